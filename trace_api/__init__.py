"""Trace API: cases, F1/F2 contacts, exposure sites, alerts and reports for health staff."""
