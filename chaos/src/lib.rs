//! squall-chaos: client faults, fault proxy, hang watchdog (see DESIGN.md). Being built.
