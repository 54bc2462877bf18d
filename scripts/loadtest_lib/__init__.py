"""Pieces of Kanava's load tool (``scripts/loadtest.py``) and benchmark (``scripts/bench``).

- :mod:`.histogram`  mergeable latency histograms (HDR-style, about 1.6 % resolution);
- :mod:`.stats`      what one run or one sweep step measured, merged over processes;
- :mod:`.config`     the options of a run and the scenario presets;
- :mod:`.servers`    starting a Kanava server or the bare relay on a loopback port;
- :mod:`.seeding`    load teams, professional accounts and sessions in a SQLite file;
- :mod:`.sim`        the simulated clients and professionals (one asyncio loop per process);
- :mod:`.runner`     running a load test over several processes and merging the results;
- :mod:`.report`     progress lines, the final report, JSON and the latency chart;
- :mod:`.bench`      ``scripts/bench``: relay against Kanava, repeated, as ratios.
"""
