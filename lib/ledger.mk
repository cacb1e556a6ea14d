# lib/ledger.mk: (filled in by its area)
