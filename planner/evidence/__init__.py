"""Evidence: run catalogues, run-vs-run comparison, live validation records."""
