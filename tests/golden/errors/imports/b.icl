import "a.icl"
