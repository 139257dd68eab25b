#!/bin/sh
# mkbusybox.sh OUT.tar
#
# Builds a minimal busybox image as a plain tar file from the host's static
# busybox (Debian: apt-get install busybox-static), for `berth import`:
#
#   scripts/mkbusybox.sh busybox.tar && berth import busybox.tar busybox
#
# The tree is the one internal/testutil.BusyboxRootfs builds: bin/busybox,
# a relative link bin/<applet> -> busybox for every applet (not
# `busybox --install -s`, which would write host paths), the official
# image's /etc/passwd and /etc/group, and its empty directories.
# Set BUSYBOX to use another static busybox binary.
set -eu

if [ "$#" -ne 1 ]; then
	echo "usage: $0 OUT.tar" >&2
	exit 2
fi
out=$1
bb=${BUSYBOX:-/bin/busybox}

if [ ! -x "$bb" ]; then
	echo "$0: $bb not found: install busybox-static (or set BUSYBOX)" >&2
	exit 1
fi
if command -v file >/dev/null 2>&1 && file -L "$bb" | grep -q 'dynamically linked'; then
	echo "$0: $bb is dynamically linked; a container needs a static one (busybox-static)" >&2
	exit 1
fi

case $out in
/*) ;;
*) out=$(pwd)/$out ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
r=$tmp/rootfs

mkdir -p "$r/bin" "$r/dev" "$r/etc" "$r/home" "$r/proc" "$r/root" "$r/sbin" \
	"$r/sys" "$r/tmp" "$r/usr/bin" "$r/usr/sbin" "$r/var/spool/mail" "$r/var/www"
chmod 755 "$r"/bin "$r"/dev "$r"/etc "$r"/home "$r"/proc "$r"/sbin "$r"/sys \
	"$r"/usr "$r"/usr/bin "$r"/usr/sbin "$r"/var "$r"/var/spool "$r"/var/spool/mail "$r"/var/www
chmod 700 "$r/root"
chmod 1777 "$r/tmp"

cp "$bb" "$r/bin/busybox"
chmod 755 "$r/bin/busybox"
for applet in $("$bb" --list); do
	case $applet in
	busybox | */*) continue ;;
	esac
	ln -s busybox "$r/bin/$applet"
done

cat >"$r/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
PASSWD

cat >"$r/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nobody:x:65534:
GROUP
chmod 644 "$r/etc/passwd" "$r/etc/group"

# Files owned by root whoever runs this; GNU tar can also make the archive
# reproducible.
set -- bin dev etc home proc root sbin sys tmp usr var
if tar --version 2>/dev/null | grep -q 'GNU tar'; then
	tar -C "$r" --numeric-owner --owner=0 --group=0 --sort=name \
		--mtime='2024-01-01 00:00:00Z' -cf "$out" "$@"
else
	tar -C "$r" -cf "$out" "$@"
fi
