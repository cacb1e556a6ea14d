# systemd/systemd.mk: (filled in by its area)
