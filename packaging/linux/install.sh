#!/usr/bin/env bash
# Install Bridgehead from a wheel, without the .deb: its own virtual environment in
# /opt/bridgehead (python3 -m venv; the dependencies come from the configured package index),
# /usr/bin/bridgehead and /usr/bin/bridgehead-relay linked to it, then
# `bridgehead service install` (the user, /etc/bridgehead, the systemd unit) once the config
# exists and systemd runs; otherwise it says what to run when they do.
#   sudo packaging/linux/install.sh WHEEL [-c /etc/bridgehead/agent.yaml] [--dry-run]
# --dry-run prints what would be done, changes nothing, and passes --dry-run on to
# `bridgehead service install`, which prints its plan.
set -euo pipefail

PREFIX=${BRIDGEHEAD_PREFIX:-/opt/bridgehead}
BINDIR=${BRIDGEHEAD_BINDIR:-/usr/bin}
PYTHON=${PYTHON:-python3}

die() {
    echo "install.sh: $*" >&2
    exit 2
}

usage() {
    echo "usage: install.sh WHEEL [-c CONFIG] [--dry-run]" >&2
    exit 2
}

# Print the command under --dry-run; run it otherwise.
run() {
    if [[ $dry_run == yes ]]; then
        printf 'would run:'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

wheel=""
config=()
dry_run=no
while [[ $# -gt 0 ]]; do
    case $1 in
        --dry-run) dry_run=yes ;;
        -c | --config)
            [[ $# -ge 2 ]] || usage
            config=(-c "$2")
            shift
            ;;
        -h | --help) usage ;;
        -*) usage ;;
        *)
            [[ -z $wheel ]] || usage
            wheel=$1
            ;;
    esac
    shift
done
[[ -n $wheel ]] || usage
[[ -f $wheel ]] || die "no wheel at $wheel"
[[ $dry_run == yes || $EUID -eq 0 ]] || die "run as root (sudo): it writes $PREFIX and $BINDIR"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$PYTHON is older than Python 3.11"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
    die "$PYTHON cannot make virtual environments: apt-get install python3-venv"

run "$PYTHON" -m venv "$PREFIX"
run "$PREFIX/bin/pip" install -q --disable-pip-version-check "$wheel"
for name in bridgehead bridgehead-relay; do
    run ln -sfn "$PREFIX/bin/$name" "$BINDIR/$name"
done
config_file=${config[1]:-/etc/bridgehead/agent.yaml}
installed="$PREFIX/bin/bridgehead"
if [[ ! -f $config_file ]]; then
    echo "install.sh: Bridgehead is installed; no config at $config_file yet: write it" \
        "(bridgehead init ... -o $config_file; bridgehead enroll TOKEN -c $config_file)," \
        "then run: sudo bridgehead service install ${config[*]}"
elif [[ $dry_run == yes ]]; then
    # An installed bridgehead prints its plan; before the first install there is none yet.
    if [[ ! -x $installed ]]; then
        installed=$(command -v bridgehead) ||
            { echo "would run: bridgehead service install ${config[*]} --dry-run"; exit 0; }
    fi
    "$installed" service install "${config[@]}" --dry-run
elif [[ ! -d /run/systemd/system ]]; then
    echo "install.sh: Bridgehead is installed; systemd is not running here: once it is," \
        "run: sudo bridgehead service install ${config[*]}"
else
    "$installed" service install "${config[@]}"
fi
