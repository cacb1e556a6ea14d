# systemd/systemd.mk: running ticketd under systemd. daemon/sd.c (the only
# file that calls libsystemd), the service and socket units, the man pages,
# all generated with the installed paths, and their tests in tests/systemd/.

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
dist_doc_DATA += docs/operations.md
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

# --- tests ---------------------------------------------------------------------
tk_sd_cppflags = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon -I$(top_srcdir)/tests
tk_sd_cflags = $(AM_CFLAGS) $(SYSTEMD_CFLAGS)
tk_sd_ldadd = lib/libticket.la $(SYSTEMD_LIBS)

# daemon/sd.c against a notify socket and passed fds of its own.
check_PROGRAMS += tests/systemd/test_sd
tests_systemd_test_sd_SOURCES = tests/systemd/test_sd.c daemon/sd.c daemon/sd.h
tests_systemd_test_sd_CPPFLAGS = $(tk_sd_cppflags)
tests_systemd_test_sd_CFLAGS = $(tk_sd_cflags)
tests_systemd_test_sd_LDADD = $(tk_sd_ldadd)

# A minimal socket-activated daemon on daemon/sd.c, for the harness's own test.
check_PROGRAMS += tests/systemd/sd_probe
tests_systemd_sd_probe_SOURCES = tests/systemd/sd_probe.c daemon/sd.c daemon/sd.h
tests_systemd_sd_probe_CPPFLAGS = $(tk_sd_cppflags)
tests_systemd_sd_probe_CFLAGS = $(tk_sd_cflags)
tests_systemd_sd_probe_LDADD = $(tk_sd_ldadd)

# The worker pool's live controls: resize under load, heartbeat (watchdog).
check_PROGRAMS += tests/systemd/test_pool_live
tests_systemd_test_pool_live_SOURCES = tests/systemd/test_pool_live.c \
	daemon/pool.c daemon/pool.h
tests_systemd_test_pool_live_CPPFLAGS = $(tk_sd_cppflags)
tests_systemd_test_pool_live_LDADD = lib/libticket.la
TESTS += tests/systemd/test_pool_live
STRESS_TESTS += tests/systemd/test_pool_live

# The notify-protocol harness (tests/systemd/sdharness.py) against sd_probe;
# the generated units (systemd-analyze verify and security); the man pages.
TESTS += tests/systemd/test_sd tests/systemd/test_harness.py \
	tests/systemd/test_units.sh tests/systemd/test_man.sh
dist_check_SCRIPTS += tests/systemd/test_harness.py tests/systemd/test_units.sh \
	tests/systemd/test_man.sh
EXTRA_DIST += tests/systemd/sdharness.py tests/systemd/sdticketd.py

# The real ticketd under the same harness: READY/STATUS/STOPPING, passed and
# bad sockets, journald prefixes (test_service); SIGHUP reloads, good, bad
# and under load (test_reload); the watchdog's cadence, a stalled loop and a
# wedged pool (test_watchdog). The last two drive threads: TSan reruns them.
tk_daemon_tests = tests/systemd/test_service.py tests/systemd/test_reload.py \
	tests/systemd/test_watchdog.py
TESTS += $(tk_daemon_tests)
STRESS_TESTS += tests/systemd/test_reload.py tests/systemd/test_watchdog.py
dist_check_SCRIPTS += $(tk_daemon_tests)
tests/systemd/test_service.log tests/systemd/test_reload.log \
	tests/systemd/test_watchdog.log: daemon/ticketd$(EXEEXT)

# make install DESTDIR=... into a temp dir, then make uninstall.
TESTS += tests/systemd/test_install.sh
dist_check_SCRIPTS += tests/systemd/test_install.sh
tests/systemd/test_install.log: daemon/ticketd$(EXEEXT) $(tk_units) $(tk_mans)
# The tests read the generated files: build them first, installed or not.
tests/systemd/test_units.log: $(tk_units) daemon/ticketd$(EXEEXT)
tests/systemd/test_man.log: $(tk_mans)
tests/systemd/test_harness.log: tests/systemd/sd_probe$(EXEEXT)
