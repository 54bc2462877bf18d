# Shared by scripts/serve and scripts/test: make .venv and install Kanava into it.
# Re-installs only when pyproject.toml changed (or EXTRAS differ).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EXTRAS="${EXTRAS:-fast}"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "kanava: creating .venv" >&2
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.kanava-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $EXTRAS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "kanava: installing into .venv (extras: $EXTRAS)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || true
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$EXTRAS]" >&2
    echo "$want" > "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"

# The development identity provider (scripts/dev_idp) runs on Node.js: install its npm packages
# when node_modules is missing or package-lock.json changed. Without npm it says so and returns.
kanava_install_dev_idp() {
    local dir="$ROOT/scripts/dev_idp"
    local idp_stamp="$dir/node_modules/.kanava-installed"
    if ! command -v npm >/dev/null 2>&1; then
        echo "kanava: npm not found, so the development identity provider is unavailable" >&2
        return 0
    fi
    local idp_want
    idp_want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    if [ ! -f "$idp_stamp" ] || [ "$(cat "$idp_stamp")" != "$idp_want" ]; then
        echo "kanava: installing the development identity provider's npm packages" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
        echo "$idp_want" > "$idp_stamp"
    fi
}

# The browser tests check the pages with axe-core (tests/browser/package.json): install it the
# same way, when node_modules is missing or package-lock.json changed. Without npm the
# accessibility checks are skipped (tests/browser/axe.py says so).
kanava_install_axe() {
    local dir="$ROOT/tests/browser"
    local axe_stamp="$dir/node_modules/.kanava-installed"
    if ! command -v npm >/dev/null 2>&1; then
        echo "kanava: npm not found, so the browser tests cannot check accessibility" >&2
        return 0
    fi
    local axe_want
    axe_want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    if [ ! -f "$axe_stamp" ] || [ "$(cat "$axe_stamp")" != "$axe_want" ]; then
        echo "kanava: installing axe-core for the browser tests" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
        echo "$axe_want" > "$axe_stamp"
    fi
}
