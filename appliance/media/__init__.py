"""Real-time media: local sources, peer connections, the remote mix, recording."""
