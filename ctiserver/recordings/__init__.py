"""Recordings and the voicemail inbox: calls recorded by queue policy from the bridge, paused for card
payments, played back (audited) through the console gateway; voicemails left in the IVR listed, assigned,
played and marked done. `service.RecordingService` decides; `media` serves the audio by ticket; the
files are named by call id (`files`), never by a path a client sent."""
