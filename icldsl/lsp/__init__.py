"""The language server behind `icldsl lsp`: diagnostics, hover, definitions, references,
completion, symbols and formatting for `.icl` files, from the parser, checker and formatter.

Only `server` imports the LSP library (pygls, the `lsp` extra); the other modules are plain
Python over the IR, so they are tested and measured without it.
"""
