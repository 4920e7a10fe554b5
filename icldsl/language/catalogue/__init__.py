"""The catalogue: every function and option a file may name, declared once (name, type with
its range, default, doc). The checker, the compiler, the language server and the docs read
it; the back ends (runtime, training, lm, datasets) implement what it names and take their
defaults and ranges from it."""
