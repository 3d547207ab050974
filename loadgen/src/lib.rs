//! squall-loadgen: the load engine (see DESIGN.md). Being built.
