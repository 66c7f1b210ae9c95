// The media half of @edgesignal/client: one RTCPeerConnection per remote peer, negotiated with
// "perfect negotiation" (W3C WebRTC, §10.7) using the roles the server hands out (`polite` in
// `joined.peers` and `peer_joined`: the peer that was in the room first is polite), so both sides
// may add tracks or channels at any time, even at once, without glare.
//
// - descriptions and candidates travel through the SignalingClient (`offer`/`answer`/`candidate`,
//   with the call's `callId` when given);
// - `ice_servers` from the server updates every connection (`setConfiguration`);
// - an ICE failure (a network change) restarts ICE (`restartIce`), which renegotiates;
// - a peer that leaves the room has its connection closed.
// Events: `track` {peerId, track, streams}, `datachannel` {peerId, channel},
// `connectionstatechange` {peerId, state}, `error` {peerId, error}, and `signal`
// {peerId, direction: "out"|"in", type: "offer"|"answer"|"candidate"} for every description and
// candidate sent (just before it goes to the socket) or received (as it arrives, before it is
// applied): timings, counting candidates.

export class PeerManager extends EventTarget {
  /**
   * @param {import("./index.js").SignalingClient} client
   * @param {object} [options]
   * @param {typeof RTCPeerConnection} [options.RTCPeerConnection]
   * @param {RTCConfiguration} [options.config]  merged with the server's `iceServers`
   * @param {boolean} [options.initiate=true]  false: never offer, only answer (a peer that is
   *   always called, such as an agent; it avoids glare where rollback is unreliable, as with
   *   data channels in Node's wrtc)
   * @param {(peerId: string, pc: RTCPeerConnection) => void} [options.prepare]  called for each
   *   new connection before anything is negotiated (add tracks and channels here, so that an
   *   answer to the other side's offer already carries them)
   */
  constructor(client, options = {}) {
    super();
    this.client = client;
    this.RTCPeerConnection = options.RTCPeerConnection ?? globalThis.RTCPeerConnection;
    this.config = options.config ?? {};
    this.initiate = options.initiate ?? true;
    this.prepare = options.prepare;
    /** peerId → {pc, polite, makingOffer, ignoreOffer, settingAnswer, callId} */
    this.peers = new Map();
    client.addEventListener("relay", (e) => this.#onRelay(e.detail.inner));
    client.addEventListener("ice_servers", (e) => {
      for (const p of this.peers.values()) p.pc.setConfiguration({ ...this.config, iceServers: e.detail.iceServers });
    });
    client.addEventListener("peer_left", (e) => this.close(e.detail.peerId));
  }

  /** The connection to `peerId`, made on first use. */
  connection(peerId, { callId } = {}) {
    const existing = this.peers.get(peerId);
    if (existing) {
      if (callId) existing.callId = callId;
      return existing.pc;
    }
    const polite = this.client.peers.get(peerId)?.polite ?? false;
    const pc = new this.RTCPeerConnection({ ...this.config, iceServers: this.client.iceServers });
    // `ops` runs this connection's negotiation steps one after another, as the browser's own
    // operations chain does: an offer is made and set, or a remote description is set and
    // answered, with nothing in between (Node's wrtc needs this; browsers do it anyway).
    const peer = { pc, polite, ignoreOffer: false, callId, ops: Promise.resolve() };
    this.peers.set(peerId, peer);
    pc.onnegotiationneeded = () =>
      this.#serial(peer, async () => {
        // Not stable: a remote offer is being answered; negotiation is needed again after it.
        if (!this.initiate || pc.signalingState !== "stable") return;
        try {
          await setLocal(pc);
          this.#emit("signal", { peerId, direction: "out", type: "offer" });
          this.client.offer(peerId, pc.localDescription.sdp, peer.callId);
        } catch (error) {
          this.#emit("error", { peerId, error });
        }
      });
    pc.onicecandidate = ({ candidate }) => {
      if (candidate?.candidate) this.#emit("signal", { peerId, direction: "out", type: "candidate" });
      this.client.candidate(peerId, candidate, peer.callId);
    };
    pc.oniceconnectionstatechange = () => {
      if (pc.iceConnectionState === "failed") pc.restartIce();
    };
    pc.onconnectionstatechange = () => this.#emit("connectionstatechange", { peerId, state: pc.connectionState });
    pc.ontrack = ({ track, streams }) => this.#emit("track", { peerId, track, streams });
    pc.ondatachannel = ({ channel }) => this.#emit("datachannel", { peerId, channel });
    this.prepare?.(peerId, pc);
    return pc;
  }

  close(peerId) {
    const peer = this.peers.get(peerId);
    if (!peer) return;
    peer.pc.close();
    this.peers.delete(peerId);
  }

  async #onRelay(inner) {
    const { from, type } = inner;
    this.connection(from, { callId: inner.callId });
    const peer = this.peers.get(from);
    if (type !== "candidate" || inner.candidate?.candidate) this.#emit("signal", { peerId: from, direction: "in", type });
    await this.#serial(peer, () => this.#apply(from, peer, inner));
  }

  async #apply(from, peer, { type, sdp, candidate }) {
    const { pc } = peer;
    try {
      if (type === "offer" || type === "answer") {
        // Our own offer is out (steps run one at a time, so that is the only way to be
        // unstable here): the impolite side ignores theirs, the polite side gives way.
        const collision = type === "offer" && pc.signalingState !== "stable";
        peer.ignoreOffer = !peer.polite && collision;
        if (peer.ignoreOffer) return;
        await setRemote(pc, { type, sdp }, collision);
        if (type === "offer") {
          await setLocal(pc);
          this.#emit("signal", { peerId: from, direction: "out", type: "answer" });
          this.client.answer(from, pc.localDescription.sdp, peer.callId);
        }
      } else if (type === "candidate") {
        try {
          await pc.addIceCandidate(candidate ?? null);
        } catch (error) {
          // Candidates of an offer we ignored (we are impolite and won the collision) fail.
          if (!peer.ignoreOffer) throw error;
        }
      }
    } catch (error) {
      this.#emit("error", { peerId: from, error });
    }
  }

  /** Runs `task` after the connection's earlier steps. */
  #serial(peer, task) {
    const run = peer.ops.then(task);
    peer.ops = run.catch(() => {});
    return run;
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** `setLocalDescription()` without arguments, or (where it needs one, as in Node's wrtc) the
 * offer or answer that it would have made. */
async function setLocal(pc) {
  try {
    await pc.setLocalDescription();
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    await pc.setLocalDescription(pc.signalingState === "have-remote-offer" ? await pc.createAnswer() : await pc.createOffer());
  }
}

/** `setRemoteDescription`, rolling our own offer back first in a collision: implicitly, as
 * browsers do (an explicit rollback there can leave ICE without candidates), or explicitly where
 * the implicit one is missing (Node's wrtc). */
async function setRemote(pc, description, collision) {
  try {
    await pc.setRemoteDescription(description);
  } catch (error) {
    if (!collision || pc.signalingState !== "have-local-offer") throw error;
    await pc.setLocalDescription({ type: "rollback" });
    await pc.setRemoteDescription(description);
  }
}
