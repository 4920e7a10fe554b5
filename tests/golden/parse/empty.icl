// Only comments.
