# Guest kernel, root file system, the rig and `make run`. Filled in by the
# kernel, rootfs and rig work; see kernel-config/, rootfs/, tests/vm/.
