"""The local stack: the background processes mediavault runs on one machine."""
