"""Harness for Switchboard's end-to-end tests: free ports, the recording test
app, the Switchboard process, SIPp and baresip peers, RTP capture and audio
analysis. Everything here drives real programs over real sockets."""
