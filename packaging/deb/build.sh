#!/usr/bin/env bash
# Build bridgehead_<version>_<arch>.deb from a wheel with dpkg-deb, from a staged tree.
#   packaging/deb/build.sh WHEEL OUTDIR [DEBIAN_REVISION]
# The package bundles its own virtual environment at /opt/bridgehead (Debian's python3 plus
# the wheel and its dependencies from the package index pip is configured with). A venv is
# not relocatable (script shebangs name its path), so it is built at its final path: in a
# private mount namespace (unshare -m, root only) an overlay on /opt takes the writes and
# the staging folder is bind-mounted on /opt/bridgehead; nothing on the host's /opt changes.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
readonly UNIT="$HERE/../linux/bridgehead.service"
readonly PREFIX=/opt/bridgehead

die() {
    echo "build.sh: $*" >&2
    exit 1
}

[[ $# -ge 2 && $# -le 3 ]] || die "usage: build.sh WHEEL OUTDIR [DEBIAN_REVISION]"
wheel="$(realpath "$1")"
outdir="$(realpath "$2")"
revision="${3:-1}"
[[ -f $wheel ]] || die "no wheel at $1"
[[ $EUID -eq 0 ]] || die "run as root: the venv is built at $PREFIX in a private mount namespace"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"
command -v objdump >/dev/null || die "objdump not found (apt-get install binutils)"
python=/usr/bin/python3
[[ -x $python ]] || die "Debian's $python is missing (apt-get install python3 python3-venv)"
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
upstream="$(basename "$wheel" | cut -d- -f2)"
version="$upstream-$revision"
arch="$(dpkg --print-architecture)"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"
root="$stage/root"
mkdir -p "$root$PREFIX" "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
    "$root/usr/share/doc/bridgehead" "$root/usr/share/lintian/overrides"

# The venv, built where it will run (the script's $1.. are the arguments after `build`).
mkdir -p "$stage/opt-upper" "$stage/opt-work"
# shellcheck disable=SC2016 # expanded by the inner bash
unshare --mount --propagation private bash -euo pipefail -c '
    mount -t overlay bridgehead-build -o "lowerdir=/opt,upperdir=$1,workdir=$2" /opt
    mkdir -p /opt/bridgehead
    mount --bind "$3" /opt/bridgehead
    "$4" -m venv --clear /opt/bridgehead
    /opt/bridgehead/bin/pip install -q --disable-pip-version-check --no-warn-script-location "$5"
    /opt/bridgehead/bin/pip uninstall -q -y pip
' build "$stage/opt-upper" "$stage/opt-work" "$root$PREFIX" "/usr/bin/python$pyver" "$wheel"
# Byte code is compiled by postinst on the target (and removed by prerm), as dh_python does.
find "$root$PREFIX" -name __pycache__ -prune -exec rm -rf {} +
find "$root$PREFIX" -name '*.pyc' -delete
rm -f "$root$PREFIX"/bin/activate* "$root$PREFIX"/bin/Activate.ps1
ln -s "$PREFIX/bin/bridgehead" "$root/usr/bin/bridgehead"
ln -s "$PREFIX/bin/bridgehead-relay" "$root/usr/bin/bridgehead-relay"

install -m 644 "$UNIT" "$root/lib/systemd/system/bridgehead.service"
install -m 644 "$HERE/copyright" "$root/usr/share/doc/bridgehead/copyright"
install -m 644 "$HERE/lintian-overrides" "$root/usr/share/lintian/overrides/bridgehead"
sed -e "s/@VERSION@/$version/" -e "s/@DATE@/$(date -R -d "@${SOURCE_DATE_EPOCH:-0}")/" \
    "$HERE/changelog.in" | gzip -9n >"$root/usr/share/doc/bridgehead/changelog.Debian.gz"
chmod 644 "$root/usr/share/doc/bridgehead/changelog.Debian.gz"
for script in postinst prerm postrm; do
    install -m 755 "$HERE/$script" "$root/DEBIAN/$script"
done

# The extension modules need at least the newest GLIBC_ symbol version they name.
glibc="$(find "$root$PREFIX" -name '*.so*' -type f -exec objdump -T {} + 2>/dev/null |
    grep -o 'GLIBC_[0-9.]*[0-9]' | sed 's/GLIBC_//' | sort -uV | tail -n 1 || true)"
libc="libc6${glibc:+ (>= $glibc)}"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z |
    xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/md5sums"
size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    -e "s/@PYTHON@/python$pyver/" -e "s/@LIBC@/$libc/" "$HERE/control.in" >"$root/DEBIAN/control"
find "$root" -type d -exec chmod 755 {} +
mkdir -p "$outdir"
dpkg-deb --root-owner-group -Zxz --build "$root" "$outdir/bridgehead_${version}_$arch.deb" >/dev/null
echo "$outdir/bridgehead_${version}_$arch.deb"
