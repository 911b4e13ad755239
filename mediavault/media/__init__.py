"""One media item as people read, correct and export it: views, edit overlays, exports."""
