"""Measuring a running engine over HTTP (never imports torch): client, closed and open loops."""
