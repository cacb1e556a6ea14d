# daemon/daemon.mk: (filled in by its area)
