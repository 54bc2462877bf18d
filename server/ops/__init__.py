"""Running the service: health checks for a load balancer and the demo data."""
