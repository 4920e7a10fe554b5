"""The catalogue: every function and option a file may name, declared once (type with its range,
default, doc), with the implementation of each named as `"module:name"` and imported only when
built, so that the checker, the language server and the docs read it without loading a back end.

`lms`: LM providers and embedding models with their options; `loaders`: data loaders;
`training`: rewards, optimizers and train settings.
"""
