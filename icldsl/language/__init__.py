"""The language front end: parser, IR, checker, compiler, formatter and the catalogue of
signatures a file may call.

It imports nothing from the back ends (`runtime`, `training`, `lm`, `datasets`): they read
the front end's declarations, never the other way round, so `icldsl check` loads no client,
no numpy and no model. tests/test_layering.py keeps that true.
"""
