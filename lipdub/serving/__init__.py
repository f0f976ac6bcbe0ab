"""Serving entry points around the public `lipdub.sync` API.

Everything here is a thin shell over `lipdub.pipeline.sync`: the web app (`app`), the HTTP job API
(`api`, with its SQLite job store) and batch dubbing (`batch`, local processes or Ray tasks). They
share one description of what a user may choose (`options.JobOptions`) and one check of what a
user uploads (`inputs.inspect_face` / `inspect_audio`), so the three accept and refuse the same
things with the same one-line messages as the CLI.
"""
