"""The kit's media through a Janus VideoRoom: one published stream, one subscription."""
