"""The session server's Janus side: a VideoRoom per session, on a pool of Janus servers."""
