#!/bin/bash -e
# On the build host: unpack the callbox source that images/build.sh put in files/ into
# the image, where 02-run-chroot.sh installs it.
SRC_TARBALL=files/callbox-src.tar.gz
if [ ! -f "${SRC_TARBALL}" ]; then
	echo "${SRC_TARBALL} is missing: build images with callbox's images/build.sh" >&2
	exit 1
fi
rm -rf "${ROOTFS_DIR}/opt/callbox/src"
install -d "${ROOTFS_DIR}/opt/callbox/src"
tar -xzf "${SRC_TARBALL}" -C "${ROOTFS_DIR}/opt/callbox/src"
