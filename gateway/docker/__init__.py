"""Docker: containers labelled as agents, and their logs.

- ``planner``: the label planner, pure: inspect documents → what each agent
  should be (no docker SDK, no event loop);
- ``discovery``: the adapter around the docker SDK that lists containers,
  follows Docker's events and feeds the planner;
- ``logdecode``: Docker's log stream decoded, sans I/O (lines, timestamps,
  resume positions);
- ``logs``: one log follower per container, its ring, shared by SSE listeners;
- ``stream``: a blocking Docker stream read in a thread that retries it
  (start, cancel, backoff, results handed to the loop): the event watcher
  and the log followers are both one.

This file imports nothing, so that importing one pure module (the planner,
from a test or a tool) does not load the docker SDK. Inside the package
``import docker`` is still the SDK: imports are absolute.
"""
