"""Motion generators behind one interface (rig, neural) and the chunked driver."""
