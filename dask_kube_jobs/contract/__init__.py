"""Layer 1: the resource contract and pure Kubernetes helpers, with no I/O and no imports from
the rest of the package. Every other layer imports from here; a fact written here is written
nowhere else (see DESIGN.md, "Layout and layers")."""
