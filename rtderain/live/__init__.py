"""Live de-raining: webcam, RTSP/HTTP/UDP/SRT streams and real-time files in; window,
recording, stream out and a small web page out.

Data flow (latest frame wins, nothing queues without bound)::

    source thread (decode, reconnect)  --LatestQueue-->  inference loop  --> sink threads
    LiveFrame(rgb, pts, capture time)                    pad, infer, crop   window / file /
                                                                            stream / --serve

:func:`rtderain.live.session.run_live` wires it together; ``rtderain stream`` is the CLI.
"""
