#!/usr/bin/env bash
# nested-kvm.sh COMMAND [ARG...]: runs COMMAND inside a small VM that has a
# real /dev/kvm, for a host that has none (one that is itself a KVM/PVM
# guest without nesting, a container without the device), where every KVM
# test would only skip. QEMU emulates the CPU (TCG) with AMD SVM, so the
# guest's kvm_amd module offers a real KVM to wasp inside it. The host's /
# is shared read-write over 9p, so COMMAND sees this checkout and writes its
# build and results here; /tmp and /run are private to the VM. It is slow
# (the guest's code is emulated: a KVM test takes ~10-60 s), so raise
# per-test timeouts, e.g. `scripts/nested-kvm.sh ctest --test-dir build -R
# trigger --timeout 900` (ctest's TIMEOUT properties win over --timeout:
# run such scripts directly). Exits with COMMAND's status.
#
# Needs root (apt-get, 9p passthrough). The kernel is Debian's
# linux-image-amd64, fetched once with apt-get download into the cache
# directory ($WASP_NESTED_DIR, default /var/cache/wasp-nested); nothing else
# is downloaded. NESTED_CPUS (2) and NESTED_MEM (6G) size the VM.
set -euo pipefail

[ $# -gt 0 ] || { echo "usage: nested-kvm.sh COMMAND [ARG...]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "nested-kvm.sh: needs root" >&2; exit 2; }
cache=${WASP_NESTED_DIR:-/var/cache/wasp-nested}
mkdir -p "$cache"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
	echo "nested-kvm: installing ${need[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi

# The kernel and an initramfs that loads 9p, kvm_amd and veth (the tests'
# network namespaces are joined by veth pairs), then switches to
# the host's / and runs the job script named on the kernel command line.
if [ ! -s "$cache/vmlinuz" ] || [ ! -s "$cache/initrd-2.gz" ]; then
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$pkg" ] || { apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); }
	chmod 755 "$work" # apt's _apt user downloads into it
	(cd "$work" && apt-get download -qq "$pkg" >/dev/null 2>&1) || { echo "nested-kvm: cannot download $pkg" >&2; exit 1; }
	dpkg-deb -x "$work"/"$pkg"_*.deb "$work/k"
	mods=$(echo "$work"/k/lib/modules/*)
	mkdir -p "$work/ird/bin" "$work/ird/mod" "$work/ird/root" "$work/ird/proc" "$work/ird/sys" "$work/ird/dev"
	cp /bin/busybox "$work/ird/bin/busybox"
	order="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache
	       9pnet 9pnet_virtio 9p irqbypass ccp kvm kvm-amd veth"
	for m in $order; do
		f=$(find "$mods" -name "$m.ko*" | head -1)
		[ -n "$f" ] || { echo "nested-kvm: module $m not in $pkg" >&2; exit 1; }
		case $f in
		*.xz) xz -dc "$f" >"$work/ird/mod/$m.ko" ;;
		*.zst) zstd -qdc "$f" >"$work/ird/mod/$m.ko" ;;
		*) cp "$f" "$work/ird/mod/$m.ko" ;;
		esac
	done
	cat >"$work/ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in MODULES; do insmod "/mod/$m.ko" || echo "nested-kvm: insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 hostroot /root || { echo "nested-kvm: no 9p root"; poweroff -f; }
job=$(sed -n 's/.*wasp_job=\([^ ]*\).*/\1/p' /proc/cmdline)
umount /sys /dev; umount /proc
exec switch_root /root /bin/bash "$job"
EOF
	sed -i "s|MODULES|$(echo $order)|" "$work/ird/init"
	chmod +x "$work/ird/init"
	(cd "$work/ird" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$cache/initrd-2.gz.new")
	cp "$work"/k/boot/vmlinuz-* "$cache/vmlinuz.new"
	mv "$cache/initrd-2.gz.new" "$cache/initrd-2.gz"
	mv "$cache/vmlinuz.new" "$cache/vmlinuz"
fi

# The job: mount what a Linux userland expects, run COMMAND where we are,
# keep its status, power off.
job=$cache/job-$$.sh
rcfile=$cache/job-$$.rc
rm -f "$rcfile"
{
	echo 'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev'
	echo 'mount -t tmpfs tmpfs /tmp; mount -t tmpfs tmpfs /run; mkdir -p /dev/shm /dev/pts'
	echo 'mount -t tmpfs tmpfs /dev/shm; mount -t devpts devpts /dev/pts'
	echo 'ln -sf /proc/self/fd /dev/fd; ip link set lo up 2>/dev/null'
	# A host name: Ceph's OSD (tests/migrate s3.*) refuses "(none)".
	echo 'hostname nested-kvm'
	echo "export PATH=$(printf %q "$PATH") HOME=/root"
	printf 'cd %q\n' "$PWD"
	printf '%q ' "$@"
	echo
	printf 'echo $? >%q\n' "$rcfile"
	echo 'sync; echo o >/proc/sysrq-trigger; sleep 10'
} >"$job"

qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "${NESTED_CPUS:-2}" -m "${NESTED_MEM:-6G}" \
	-nographic -no-reboot -kernel "$cache/vmlinuz" -initrd "$cache/initrd-2.gz" \
	-append "console=ttyS0 quiet panic=-1 wasp_job=$job" \
	-fsdev local,id=r,path=/,security_model=passthrough,multidevs=remap \
	-device virtio-9p-pci,fsdev=r,mount_tag=hostroot </dev/null |
	sed -u -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g; s/\r$//' |
	{ grep --line-buffered -v -E '^\[ *[0-9.]+\]|SeaBIOS|iPXE|Booting from|Press Ctrl|^$' || true; }
rc=$(cat "$rcfile" 2>/dev/null || echo 125)
rm -f "$job" "$rcfile"
exit "$rc"
