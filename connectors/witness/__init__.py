"""``ringtally witness``: recompute every submission log from the ballots topic, co-sign the
heads that agree, alert on those that do not (native/SPEC.md §14.5)."""
