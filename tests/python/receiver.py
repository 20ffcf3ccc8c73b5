# SPDX-License-Identifier: Apache-2.0
"""A minimal alphatop monitor for the tests, written from docs/protocol.md alone: a pyzmq ROUTER
that decodes every frame (JSON header, then the raw payload for layers) and can send control
messages back to a trainer."""

import json
import time

import numpy as np
import zmq

_NUMPY = {"f32": "f4", "f16": "f2", "bf16": "u2"}  # bf16 has no numpy type: kept as its bits


def decode_frames(frames):
    """Turns a message's frames (after the ROUTER identity) into a list of dicts; a layer's
    dict gets its payload as a numpy array under "data" (bf16 as uint16 bits)."""
    out, i = [], 0
    while i < len(frames):
        msg = json.loads(frames[i])
        i += 1
        if msg["type"] == "layer":
            payload = frames[i]
            i += 1
            assert len(payload) == msg["nbytes"], (msg, len(payload))
            order = "<" if msg["byte_order"] == "little" else ">"
            dtype = np.dtype(order + _NUMPY[msg["dtype"]])
            msg["raw"] = bytes(payload)
            msg["data"] = np.frombuffer(payload, dtype=dtype).reshape(msg["shape"])
        out.append(msg)
    return out


class Receiver:
    """Binds a ROUTER on `endpoint` ("tcp://127.0.0.1:*" picks a free port: see .endpoint)."""

    def __init__(self, endpoint):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.messages = []
        self.peers = {}  # run id -> ROUTER identity of the trainer

    def poll(self, timeout=0.2):
        """Receives everything that arrives within `timeout` seconds of the last message."""
        while self.sock.poll(int(timeout * 1000)):
            frames = self.sock.recv_multipart()
            for msg in decode_frames(frames[1:]):
                self.peers[msg["run"]] = frames[0]
                self.messages.append(msg)
                if msg["type"] == "goodbye":  # read it all: the trainer may close
                    ack = {"v": 2, "type": "goodbye_ack", "run": msg["run"]}
                    self.sock.send_multipart([frames[0], json.dumps(ack).encode()])
        return self.messages

    def wait_for(self, predicate, timeout=30.0):
        """Polls until predicate(messages) is true or timeout seconds pass; returns it."""
        deadline = time.monotonic() + timeout
        while not predicate(self.messages) and time.monotonic() < deadline:
            self.poll(0.05)
        return predicate(self.messages)

    def of_type(self, kind):
        return [m for m in self.messages if m["type"] == kind]

    def send(self, run, msg):
        """Sends a control message ({"type": "stop", "reason": ...}, ...) to a known run."""
        header = dict({"v": 1, "run": run}, **msg)
        self.sock.send_multipart([self.peers[run], json.dumps(header).encode()])

    def close(self):
        self.sock.close()
        self.ctx.term()
