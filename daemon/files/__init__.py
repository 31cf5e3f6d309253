"""Files and side commands over a session's SSH master: SFTP, side channels, exec, transfers."""
