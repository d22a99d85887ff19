"""Qt widgets of the plugin (GUI only; the kernel viewer dock will live here)."""
