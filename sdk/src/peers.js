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
// `connectionstatechange` {peerId, state}, `error` {peerId, error}.

export class PeerManager extends EventTarget {
  /**
   * @param {import("./index.js").SignalingClient} client
   * @param {object} [options]
   * @param {typeof RTCPeerConnection} [options.RTCPeerConnection]
   * @param {RTCConfiguration} [options.config]  merged with the server's `iceServers`
   */
  constructor(client, options = {}) {
    super();
    this.client = client;
    this.RTCPeerConnection = options.RTCPeerConnection ?? globalThis.RTCPeerConnection;
    this.config = options.config ?? {};
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
    const peer = { pc, polite, makingOffer: false, ignoreOffer: false, settingAnswer: false, callId };
    this.peers.set(peerId, peer);
    pc.onnegotiationneeded = async () => {
      try {
        peer.makingOffer = true;
        await pc.setLocalDescription();
        this.client.offer(peerId, pc.localDescription.sdp, peer.callId);
      } catch (error) {
        this.#emit("error", { peerId, error });
      } finally {
        peer.makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => this.client.candidate(peerId, candidate, peer.callId);
    pc.oniceconnectionstatechange = () => {
      if (pc.iceConnectionState === "failed") pc.restartIce();
    };
    pc.onconnectionstatechange = () => this.#emit("connectionstatechange", { peerId, state: pc.connectionState });
    pc.ontrack = ({ track, streams }) => this.#emit("track", { peerId, track, streams });
    pc.ondatachannel = ({ channel }) => this.#emit("datachannel", { peerId, channel });
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
    const pc = this.connection(from, { callId: inner.callId });
    const peer = this.peers.get(from);
    try {
      if (type === "offer" || type === "answer") {
        const readyForOffer = !peer.makingOffer && (pc.signalingState === "stable" || peer.settingAnswer);
        const collision = type === "offer" && !readyForOffer;
        peer.ignoreOffer = !peer.polite && collision;
        if (peer.ignoreOffer) return;
        peer.settingAnswer = type === "answer";
        await pc.setRemoteDescription({ type, sdp: inner.sdp });
        peer.settingAnswer = false;
        if (type === "offer") {
          await pc.setLocalDescription();
          this.client.answer(from, pc.localDescription.sdp, peer.callId);
        }
      } else if (type === "candidate") {
        try {
          await pc.addIceCandidate(inner.candidate ?? null);
        } catch (error) {
          // Candidates of an offer we ignored (we are impolite and won the collision) fail.
          if (!peer.ignoreOffer) throw error;
        }
      }
    } catch (error) {
      this.#emit("error", { peerId: from, error });
    }
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
