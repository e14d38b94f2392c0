#!/bin/sh
# One container of a simulated pod, as a container runtime would start it.
#
# Run it ONLY inside a private mount + UTS namespace, which tests/harness/pods.py does:
#   unshare --mount --uts --propagation private sh pod-sandbox.sh ROOTFS HOSTNAME USER:GROUP \
#       GROUPS RO_ROOT IMAGE_ROOT [--bind SRC DEST ro|rw]... -- CMD [ARG]...
#
#   ROOTFS    an empty directory; a tmpfs is mounted on it (in this namespace only) and becomes the
#             container's root: /dev/{null,zero,random,urandom}, /proc, the --bind mounts below,
#             and with IMAGE_ROOT host-usr the host's /usr (read-only, for the dynamic loader and
#             libc) with /lib, /lib64, /bin links into it; with IMAGE_ROOT scratch, nothing else
#             (a `FROM scratch` image holding one static binary).
#   HOSTNAME  the pod's host name (Kubernetes sets it to the pod name).
#   USER:GROUP numeric runAsUser:runAsGroup.
#   GROUPS    supplementary groups (fsGroup, ...), comma-separated, or - for none.
#   RO_ROOT   true: remount the root read-only (readOnlyRootFilesystem).
#   --bind SRC DEST ro|rw   a volume or file (a ConfigMap volume, an emptyDir, resolv.conf,
#             /etc/hosts, the binary at the image's entrypoint path).
#
# Every mount lives in this process's own mount namespace: nothing is mounted in the caller's
# namespace, and the kernel drops them all when this (single, exec-chained) process exits. The
# machine's /etc/resolv.conf is never touched: the pod's resolv.conf is bound at ROOTFS/etc.
set -eu

# The environment is the container's (pods.py passes exactly that); use a PATH of our own for
# the tools below and hand the container's back (or none, if it had none) at exec.
if [ "${PATH+set}" = set ]; then ctr_path=$PATH; else ctr_path=; unset_path=1; fi
PATH=/usr/sbin:/usr/bin:/sbin:/bin

rootfs=$1 host=$2 ids=$3 groups=$4 ro_root=$5 image_root=$6
shift 6

mount -t tmpfs -o mode=0755,size=16m pod-rootfs "$rootfs"
mkdir "$rootfs/dev" "$rootfs/proc" "$rootfs/etc" "$rootfs/tmp"
case $image_root in
host-usr)
    mkdir "$rootfs/usr"
    ln -s usr/lib "$rootfs/lib"
    ln -s usr/lib64 "$rootfs/lib64"
    ln -s usr/bin "$rootfs/bin"
    mount --bind /usr "$rootfs/usr"
    mount -o remount,bind,ro "$rootfs/usr"
    ;;
scratch) ;;
*)
    echo "pod-sandbox: IMAGE_ROOT must be host-usr or scratch, not $image_root" >&2
    exit 97
    ;;
esac
for dev in null zero random urandom; do
    : >"$rootfs/dev/$dev"
    mount --bind "/dev/$dev" "$rootfs/dev/$dev"
done
mount --rbind /proc "$rootfs/proc"

while [ "$#" -gt 0 ]; do
    case $1 in
    --bind)
        src=$2 dest=$rootfs$3 mode=$4
        shift 4
        if [ -d "$src" ]; then
            mkdir -p "$dest"
        else
            mkdir -p "$(dirname "$dest")"
            : >"$dest"
        fi
        mount --bind "$src" "$dest"
        if [ "$mode" = ro ]; then
            mount -o remount,bind,ro "$dest"
        fi
        ;;
    --)
        shift
        break
        ;;
    *)
        echo "pod-sandbox: unexpected argument: $1" >&2
        exit 97
        ;;
    esac
done

hostname "$host"
if [ "$ro_root" = true ]; then
    mount -o remount,ro "$rootfs"
fi
chroot=$(command -v chroot)
unset PWD OLDPWD # the shell's own; a container runtime passes only the container's env
if [ -n "${unset_path:-}" ]; then unset PATH; else PATH=$ctr_path; fi
if [ "$groups" = - ]; then
    exec "$chroot" --userspec="$ids" "$rootfs" "$@"
fi
exec "$chroot" --userspec="$ids" --groups="$groups" "$rootfs" "$@"
