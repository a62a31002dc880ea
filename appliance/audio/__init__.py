"""Room audio: echo cancellation, noise suppression, gain control and voice activity on
the way out, the soft limiter on the way in, the echo delay of each route, ringtones.

Modules are imported directly (``appliance.audio.room``...): this package imports nothing
itself, so media and calls can depend on its parts without a cycle."""
