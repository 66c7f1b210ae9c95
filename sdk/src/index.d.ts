// Types for @edgesignal/client (docs/protocol.md is the wire contract).

export interface RTCIceServerLike {
  urls: string[];
  username?: string;
  credential?: string;
}

export type Status = "available" | "in_call" | "away";

export interface PeerInfo {
  peerId: string;
  metadata: Record<string, unknown>;
  status: Status;
  /** Your perfect-negotiation role toward this peer. */
  polite: boolean;
}

export interface ServerFrame {
  type: string;
  seq?: number;
  [field: string]: unknown;
}

export interface Joined extends ServerFrame {
  type: "joined";
  roomId: string;
  peerId: string;
  peers: PeerInfo[];
  resumed: boolean;
  resumeToken: string;
  iceServers: RTCIceServerLike[];
  iceServersExpireAt?: number;
}

export interface Relay extends ServerFrame {
  type: "relay";
  inner: {
    type: "offer" | "answer" | "candidate";
    sdp?: string;
    candidate?: RTCIceCandidateInitLike | null;
    callId?: string;
    roomId: string;
    from: string;
    to: string;
  };
  correlationId: string;
}

export interface RTCIceCandidateInitLike {
  candidate?: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

export interface CallRinging extends ServerFrame {
  type: "call_ringing";
  callId: string;
  to: string[];
}

export interface SignalingClientOptions {
  /** The Worker's origin, e.g. `wss://signal.example.com`. */
  url: string;
  room: string;
  token?: string;
  /** Called for every (re)connect and before the token expires. */
  getToken?: () => Promise<string>;
  /** A WebSocket constructor (browsers have one; in Node pass `ws`'s). */
  WebSocket?: unknown;
  heartbeatMs?: number;
  deadAfterMs?: number;
  ackDelayMs?: number;
  backoffMs?: number;
  maxBackoffMs?: number;
  maxAttempts?: number;
}

export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed" | "left";

export declare class SignalingClient extends EventTarget {
  constructor(options: SignalingClientOptions);
  readonly peerId: string | null;
  readonly resumeToken: string | null;
  readonly iceServers: RTCIceServerLike[];
  readonly peers: Map<string, PeerInfo>;
  readonly state: ClientState;
  /** Resolves with the first `joined`. */
  connect(): Promise<Joined>;
  leave(): void;
  close(): void;
  send(frame: Record<string, unknown>): void;
  /** Replaces your metadata (others get `peer_updated`; you get `joined` again, not a new session). */
  setMetadata(metadata: Record<string, unknown>): void;
  offer(to: string, sdp: string, callId?: string): void;
  answer(to: string, sdp: string, callId?: string): void;
  candidate(to: string, candidate: RTCIceCandidateInitLike | null, callId?: string): void;
  call(peers: string[], media?: { audio?: boolean; video?: boolean }): Promise<CallRinging>;
  invite(callId: string, peers: string[]): void;
  acceptCall(callId: string): void;
  rejectCall(callId: string, reason?: "declined" | "busy"): void;
  hangup(callId: string): void;
  /** Every server frame type is an event (`relay`, `peer_joined`, `call_incoming`, …) with the
   * frame as `detail`, after a `frame` event for every frame (whatever its type); plus `open`, `resumed`, `reconnecting`, `closed`, `error`. */
  addEventListener(type: string, listener: (event: CustomEvent<any>) => void, options?: boolean | AddEventListenerOptions): void;
}

/** One RTCPeerConnection per remote peer, with perfect negotiation by the server's roles. */
export declare class PeerManager extends EventTarget {
  constructor(
    client: SignalingClient,
    options?: {
      RTCPeerConnection?: unknown;
      config?: Record<string, unknown>;
      /** false: never offer, only answer (an always-called peer such as an agent). Default true. */
      initiate?: boolean;
      /** Called for each new connection before anything is negotiated: add tracks and channels here. */
      prepare?: (peerId: string, pc: RTCPeerConnection) => void;
    },
  );
  /** The connection to `peerId`, made on first use. */
  connection(peerId: string, options?: { callId?: string }): RTCPeerConnection;
  close(peerId: string): void;
  /** Events: `track` {peerId, track, streams}, `datachannel` {peerId, channel},
   * `connectionstatechange` {peerId, state}, `error` {peerId, error}, `signal`
   * {peerId, direction: "out" | "in", type: "offer" | "answer" | "candidate"} (sent: just before
   * it goes to the socket; received: as it arrives, before it is applied). */
  addEventListener(type: string, listener: (event: CustomEvent<any>) => void, options?: boolean | AddEventListenerOptions): void;
}
