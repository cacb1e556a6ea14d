# systemd/local.mk: running ticketd under systemd: the service and socket
# units and the man pages, all generated with the installed paths, and the
# sample config's install rules. (daemon/sd.c, the only file that calls
# libsystemd, is built with the daemon; the tests are in tests/local.mk.)

# --- generated files: installed paths, expanded by make, not configure, so
# `make prefix=...` and distcheck's prefix come out right ---------------------
tk_subst = $(SED) \
	-e 's|@sbindir[@]|$(sbindir)|g' \
	-e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@localstatedir[@]|$(localstatedir)|g' \
	-e 's|@docdir[@]|$(docdir)|g' \
	-e 's|@PACKAGE_VERSION[@]|$(PACKAGE_VERSION)|g'
tk_subst_rule = $(AM_V_GEN)$(MKDIR_P) $(@D) && rm -f $@ $@.tmp && \
	$(tk_subst) $(srcdir)/$@.in >$@.tmp && mv -f $@.tmp $@
# Man pages: a roff break point (\:) after every / of a path, so a long
# prefix (distcheck's) still fits a narrow terminal without a warning.
tk_man_rule = $(AM_V_GEN)$(MKDIR_P) $(@D) && rm -f $@ $@.tmp && \
	brk() { printf '%s\n' "$$1" | $(SED) 's|/|/\\\\:|g'; } && \
	$(SED) -e "s|@sbindir[@]|`brk '$(sbindir)'`|g" \
	-e "s|@sysconfdir[@]|`brk '$(sysconfdir)'`|g" \
	-e "s|@localstatedir[@]|`brk '$(localstatedir)'`|g" \
	-e "s|@docdir[@]|`brk '$(docdir)'`|g" \
	-e 's|@PACKAGE_VERSION[@]|$(PACKAGE_VERSION)|g' \
	$(srcdir)/$@.in >$@.tmp && mv -f $@.tmp $@

tk_units = systemd/ticketd.service systemd/ticketd.socket
tk_mans = docs/ticketd.8 docs/ticketd.conf.5

systemd/ticketd.service: $(srcdir)/systemd/ticketd.service.in Makefile
	$(tk_subst_rule)
systemd/ticketd.socket: $(srcdir)/systemd/ticketd.socket.in Makefile
	$(tk_subst_rule)
docs/ticketd.8: $(srcdir)/docs/ticketd.8.in Makefile
	$(tk_man_rule)
docs/ticketd.conf.5: $(srcdir)/docs/ticketd.conf.5.in Makefile
	$(tk_man_rule)

if HAVE_SYSTEMDUNITDIR
systemdsystemunit_DATA = $(tk_units)
endif
man_MANS += $(tk_mans)
EXTRA_DIST += systemd/ticketd.service.in systemd/ticketd.socket.in \
	docs/ticketd.8.in docs/ticketd.conf.5.in
CLEANFILES += $(tk_units) $(tk_mans)

# The sample config as $(sysconfdir)/ticketd/ticketd.conf. An existing one
# is an operator's and is never overwritten: the sample then lands next to
# it as ticketd.conf.sample. Uninstall removes the config only while it is
# still the unchanged sample.
ticketdconfdir = $(sysconfdir)/ticketd
install-data-local: install-ticketd-conf
uninstall-local: uninstall-ticketd-conf
install-ticketd-conf:
	$(MKDIR_P) '$(DESTDIR)$(ticketdconfdir)'
	@if test -f '$(DESTDIR)$(ticketdconfdir)/ticketd.conf' && \
	  ! cmp -s '$(srcdir)/conf/ticketd.conf' '$(DESTDIR)$(ticketdconfdir)/ticketd.conf'; then \
	  echo " keeping $(DESTDIR)$(ticketdconfdir)/ticketd.conf; the new sample is ticketd.conf.sample"; \
	  $(INSTALL_DATA) '$(srcdir)/conf/ticketd.conf' '$(DESTDIR)$(ticketdconfdir)/ticketd.conf.sample'; \
	else \
	  echo " $(INSTALL_DATA) conf/ticketd.conf '$(DESTDIR)$(ticketdconfdir)/ticketd.conf'"; \
	  $(INSTALL_DATA) '$(srcdir)/conf/ticketd.conf' '$(DESTDIR)$(ticketdconfdir)/ticketd.conf'; \
	fi
uninstall-ticketd-conf:
	rm -f '$(DESTDIR)$(ticketdconfdir)/ticketd.conf.sample'
	@if cmp -s '$(srcdir)/conf/ticketd.conf' '$(DESTDIR)$(ticketdconfdir)/ticketd.conf'; then \
	  echo " rm -f '$(DESTDIR)$(ticketdconfdir)/ticketd.conf'"; \
	  rm -f '$(DESTDIR)$(ticketdconfdir)/ticketd.conf'; \
	fi
.PHONY: install-ticketd-conf uninstall-ticketd-conf

# distcheck installs into a private prefix: the units go there too.
AM_DISTCHECK_CONFIGURE_FLAGS = --with-systemdsystemunitdir='$$(prefix)/lib/systemd/system'

EXTRA_DIST += systemd/local.mk
