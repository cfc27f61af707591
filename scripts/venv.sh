# Sourced by scripts/serve and scripts/test: make .venv and install rexec into
# it, saying what happens, and skip the install when nothing it depends on
# changed since the last one (rexec is installed editable, so its own code
# needs no reinstall; pyproject.toml and the Python version are what matter).
#
#   ensure_venv NAME EXTRA   NAME starts each message; EXTRA "" or an extra ("test")

say() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { say "$*"; exit 1; }

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    local found
    found=$(python3 --version 2>&1 || echo "no python3")
    die "rexec needs Python 3.11 or newer (found: $found); install it (e.g. apt-get install python3) or set PYTHON=/path/to/python3.11"
}

make_venv() {
    local python
    python=$(find_python)
    if [ -e .venv ]; then
        say ".venv is broken (its python does not start); making it again"
        rm -rf .venv
    fi
    say "creating .venv with $("$python" --version 2>&1) ($(command -v "$python"))"
    if ! "$python" -m venv .venv; then
        rm -rf .venv
        "$python" -c 'import ensurepip' 2>/dev/null \
            || die "Python's venv module is missing: install it (Debian, Ubuntu: apt-get install python3-venv) and run me again"
        die "could not create .venv with $python"
    fi
}

# Write the bytecode of every installed module and of rexec's own, with all
# cores (about 3 s the first time, half a second when it is up to date). Not
# left to Python: with PYTHONDONTWRITEBYTECODE set (as on this project's
# machines) it would compile from source in every process, and the test suite
# starts hundreds of them (half its CPU, measured).
write_bytecode() {
    local site
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    .venv/bin/python -m compileall -q -j 0 "$site" rexec client >/dev/null \
        || die "could not write bytecode into .venv (python -m compileall failed)"
}

ensure_venv() {
    SCRIPT_NAME=$1
    local extra=$2
    .venv/bin/python -c '' 2>/dev/null || make_venv
    # The stamp: what the last install was made from, then its extras ("test").
    local stamp_file=.venv/rexec-install-stamp fingerprint installed=""
    fingerprint="$(.venv/bin/python -c 'import sys; print(sys.version.split()[0])') $(sha256sum pyproject.toml | cut -d' ' -f1)"
    [ -f "$stamp_file" ] && installed=$(sed -n 2p "$stamp_file")
    local has_extra=yes
    [ -n "$extra" ] && [[ ",$installed," != *",$extra,"* ]] && has_extra=no
    if [ -f "$stamp_file" ] && [ "$(head -1 "$stamp_file")" = "$fingerprint" ] && [ $has_extra = yes ]; then
        say ".venv is up to date (pyproject.toml unchanged since its last install)"
        write_bytecode
        return
    fi
    # Keep the extras installed before: serve after test keeps the test tools.
    local extras=$installed
    [ $has_extra = no ] && extras=${installed:+$installed,}$extra
    local target=.
    [ -n "$extras" ] && target=".[$extras]"
    say "installing rexec and its dependencies into .venv: pip install -e '$target' (10-20 s the first time)"
    local started=$SECONDS
    rm -f "$stamp_file"
    # --no-compile: pip would compile on one core; write_bytecode uses all.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-compile -e "$target" \
        || die "pip install failed (see above); it needs PyPI, or a mirror pip is set up for"
    printf '%s\n%s\n' "$fingerprint" "$extras" >"$stamp_file"
    write_bytecode
    say "installed in $((SECONDS - started)) s"
}
