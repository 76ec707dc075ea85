// Conclave demo page.
//
// Joins a room over the signaling WebSocket (docs/protocol.md, subprotocol
// conclave.v1) and uses two peer connections: "publish", where this page
// offers sendonly transceivers (camera, microphone, screen) and the node
// answers, and "subscribe", where the node offers one m-line per remote track
// and this page answers. The node is ICE-lite and puts its candidates in its
// SDP; our trickled candidates are sent anyway (the node may use them).
//
// window.conclaveTest is the hook the browser integration tests drive
// (tests/integration/browser/).

const $ = (id) => document.getElementById(id);

/** An error with a protocol error code (or a local one such as "closed"). */
class CvError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

const MAX_EVENTS = 1000;

// ---------------------------------------------------------------- session

/** One join of one room: a WebSocket and up to two peer connections. */
class Session {
  constructor(room, name) {
    this.room = room;
    this.name = name;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map(); // request id -> {resolve, reject}
    this.me = null; // our participant id once joined
    this.participants = new Map(); // id -> {id, name}, others only
    this.tracks = new Map(); // id -> track object, others' tracks only
    this.subMids = new Map(); // subscribe m-line mid -> track id
    this.pub = null; // publish RTCPeerConnection
    this.sub = null; // subscribe RTCPeerConnection
    this.published = []; // {transceiver, source, track}
    this.pubCandidates = []; // gathered before the first publish was sent
    this.pubSent = false;
    this.pubChain = Promise.resolve(); // publish changes run one at a time
    this.subChain = Promise.resolve(); // subscribe offers apply in order
    this.events = []; // [{type, ...}] what the node told us, for tests
    this.trackEvents = 0; // ontrack on the subscribe connection
    this.closed = false;
    this.leaving = false;
  }

  // ---- signaling

  open() {
    const url = new URL('/ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, 'conclave.v1');
      this.ws = ws;
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new CvError('network', `cannot reach ${url}`));
      ws.onmessage = (ev) => this.onMessage(ev.data);
      ws.onclose = (ev) => this.onClose(ev);
    });
  }

  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN)
      throw new CvError('closed', 'the signaling connection is closed');
    this.ws.send(JSON.stringify(msg));
  }

  /** Sends msg with a fresh id; resolves with the reply, rejects on error. */
  request(msg) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.send({ ...msg, id });
      } catch (e) {
        this.pending.delete(id);
        reject(e);
      }
    });
  }

  log(event) {
    this.events.push({ ...event, at: Date.now() });
    if (this.events.length > MAX_EVENTS) this.events.shift();
  }

  onMessage(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      ui.error(new CvError('bad_message', 'the node sent a frame that is not JSON'));
      return;
    }
    if (msg.type === 'error') {
      ui.recordNodeError(msg);
    }
    const waiter = Number.isInteger(msg.id) ? this.pending.get(msg.id) : undefined;
    if (waiter) {
      this.pending.delete(msg.id);
      if (msg.type === 'error') {
        const e = new CvError(msg.code, msg.message ?? '');
        e.shown = true; // recordNodeError showed it
        waiter.reject(e);
      } else {
        waiter.resolve(msg);
      }
      return;
    }
    this.onEvent(msg);
  }

  onEvent(msg) {
    switch (msg.type) {
    case 'participant_joined':
      if (msg.participant && msg.participant.id !== this.me)
        this.participants.set(msg.participant.id, msg.participant);
      this.log({ type: msg.type, participant: msg.participant?.id });
      break;
    case 'participant_left':
      this.participants.delete(msg.participant);
      for (const [id, t] of this.tracks)
        if (t.participant === msg.participant) this.tracks.delete(id);
      this.log({ type: msg.type, participant: msg.participant });
      break;
    case 'track_added':
      if (msg.track && msg.track.participant !== this.me) this.tracks.set(msg.track.id, msg.track);
      this.log({ type: msg.type, track: msg.track?.id, participant: msg.track?.participant });
      break;
    case 'track_removed':
      this.tracks.delete(msg.track);
      this.log({ type: msg.type, track: msg.track });
      break;
    case 'track_muted': {
      const t = this.tracks.get(msg.track);
      if (t) t.muted = !!msg.muted;
      this.log({ type: msg.type, track: msg.track, muted: !!msg.muted });
      break;
    }
    case 'subscribe_offer':
      this.log({ type: msg.type, mids: (msg.tracks ?? []).length });
      this.subChain = this.subChain
        .then(() => this.applySubscribeOffer(msg))
        .catch((e) => ui.error(e));
      break;
    case 'draining':
      this.log({ type: msg.type, deadline_ms: msg.deadline_ms });
      ui.error(new CvError('draining', `the node is shutting down (in ${msg.deadline_ms} ms)`));
      break;
    case 'error':
      this.log({ type: msg.type, code: msg.code });
      break;
    default:
      break; // unknown types are ignored, as the protocol says
    }
    ui.render();
  }

  onClose(ev) {
    for (const w of this.pending.values())
      w.reject(new CvError('closed', `signaling closed (${ev.code})`));
    this.pending.clear();
    this.log({ type: 'socket_closed', code: ev.code });
    if (!this.leaving && this.me)
      ui.error(new CvError('closed', `disconnected from the node (${ev.code} ${ev.reason})`));
    this.teardown();
  }

  // ---- join and leave

  /** token === null sends a join without a token member (tests). */
  async join(token) {
    await this.open();
    const msg = { type: 'join', room: this.room };
    if (token !== null) msg.token = token;
    if (this.name) msg.name = this.name;
    const joined = await this.request(msg);
    this.me = joined.participant;
    for (const p of joined.participants ?? [])
      if (p.id !== this.me) this.participants.set(p.id, p);
    for (const t of joined.tracks ?? [])
      if (t.participant !== this.me) this.tracks.set(t.id, t);
    this.log({ type: 'joined', participant: this.me });
    this.sub = this.makePc('subscribe');
    this.sub.ontrack = () => {
      this.trackEvents++;
      ui.render();
    };
    ui.render();
    return joined;
  }

  async leave() {
    if (this.closed) return;
    this.leaving = true;
    try {
      this.send({ type: 'leave' });
      // The node closes the socket; do not wait for it forever.
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 2000);
        this.ws.addEventListener('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    } catch {
      // already closed
    }
    this.teardown();
  }

  teardown() {
    if (this.closed) return;
    this.closed = true;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
    for (const p of this.published) p.track.stop();
    this.published = [];
    this.pub?.close();
    this.sub?.close();
    ui.render();
  }

  // ---- peer connections

  makePc(which) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    pc.onicecandidate = (ev) => {
      const c = ev.candidate;
      const msg = {
        type: 'candidate',
        pc: which,
        candidate: c ? c.candidate : '',
        sdpMid: (c && c.sdpMid) || pc.getTransceivers().find((t) => t.mid)?.mid || '0',
      };
      if (which === 'publish' && !this.pubSent) this.pubCandidates.push(msg);
      else this.trySend(msg);
    };
    pc.onconnectionstatechange = () => {
      this.log({ type: 'pc_state', pc: which, state: pc.connectionState });
      if (pc.connectionState === 'failed')
        ui.error(new CvError('ice', `the ${which} connection failed`));
      ui.render();
    };
    return pc;
  }

  trySend(msg) {
    try {
      this.send(msg);
    } catch {
      // the socket closed: nothing to tell the node any more
    }
  }

  async applySubscribeOffer(msg) {
    if (this.closed) return;
    if (!this.sub) throw new CvError('bad_message', 'subscribe_offer before joined');
    this.subMids = new Map((msg.tracks ?? []).map((t) => [t.mid, t.track]));
    await this.sub.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    await this.sub.setLocalDescription(await this.sub.createAnswer());
    ui.render();
    await this.request({ type: 'subscribe_answer', sdp: this.sub.localDescription.sdp });
  }

  /** Runs fn after every earlier publish change has finished. */
  serial(fn) {
    const run = this.pubChain.then(fn);
    this.pubChain = run.catch(() => {});
    return run;
  }

  addSender(track, source, stream) {
    if (!this.pub) this.pub = this.makePc('publish');
    const transceiver = this.pub.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    this.published.push({ transceiver, source, track });
  }

  /** Offers the current senders to the node and applies its answer. */
  async negotiatePublish() {
    const pc = this.pub;
    await pc.setLocalDescription(await pc.createOffer());
    const tracks = this.published.map((p) => ({ mid: p.transceiver.mid, source: p.source }));
    let reply;
    try {
      const pending = this.request({ type: 'publish', sdp: pc.localDescription.sdp, tracks });
      this.pubSent = true;
      for (const c of this.pubCandidates.splice(0)) this.trySend(c);
      reply = await pending;
    } catch (e) {
      if (pc.signalingState === 'have-local-offer')
        await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
      throw e;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    ui.render();
  }

  /** Publishes camera and microphone; constraints as for getUserMedia. */
  publishMedia({ audio = true, video = true } = {}) {
    return this.serial(async () => {
      const stream = await navigator.mediaDevices.getUserMedia({ audio, video });
      if (this.closed) {
        stream.getTracks().forEach((t) => t.stop());
        throw new CvError('closed', 'the session ended while the camera started');
      }
      for (const track of stream.getTracks())
        this.addSender(track, track.kind === 'audio' ? 'microphone' : 'camera', stream);
      ui.render();
      await this.negotiatePublish();
    });
  }

  /**
   * Publishes a screen track with source "screen". When canvas is set (or
   * getDisplayMedia is missing or refused and fallback is set), an animated
   * canvas stands in for the screen: headless browsers have none.
   */
  publishScreen({ canvas = false, fallback = false } = {}) {
    return this.serial(async () => {
      if (this.closed) throw new CvError('closed', 'not joined');
      if (this.published.some((p) => p.source === 'screen')) return;
      let stream = null;
      if (!canvas && navigator.mediaDevices.getDisplayMedia) {
        try {
          stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
        } catch (e) {
          if (!fallback) throw e;
        }
      }
      if (!stream) {
        if (!canvas && !fallback) throw new CvError('unsupported', 'no screen capture here');
        stream = canvasStream();
      }
      const track = stream.getVideoTracks()[0];
      // The browser ends the track when the user stops sharing.
      track.addEventListener('ended', () => this.unpublishScreen().catch((e) => ui.error(e)));
      this.addSender(track, 'screen', stream);
      ui.render();
      await this.negotiatePublish();
    });
  }

  unpublishScreen() {
    return this.serial(async () => {
      const i = this.published.findIndex((p) => p.source === 'screen');
      if (i < 0 || this.closed) return;
      const [p] = this.published.splice(i, 1);
      p.track.stop();
      ui.render();
      if (p.transceiver.mid) await this.request({ type: 'unpublish', mid: p.transceiver.mid });
      // A stopped transceiver leaves a rejected (port 0) m-line in the next
      // offer (RFC 8829 section 4.2.1 / 5.2.2).
      p.transceiver.stop();
      await this.negotiatePublish();
    });
  }

  // ---- stats, for the tests and the curious

  async stats() {
    const remote = [];
    if (this.sub && !this.closed) {
      const report = await this.sub.getStats();
      const inbound = [];
      report.forEach((s) => {
        if (s.type === 'inbound-rtp') inbound.push(s);
      });
      for (const tr of this.sub.getTransceivers()) {
        const trackId = tr.mid && this.subMids.get(tr.mid);
        const info = trackId && this.tracks.get(trackId);
        if (!info || stopped(tr) || tr.currentDirection === 'inactive') continue;
        const s = inbound.find((x) => x.mid === tr.mid) ??
          inbound.find((x) => x.trackIdentifier === tr.receiver.track.id);
        remote.push({
          track: trackId,
          mid: tr.mid,
          participant: info.participant,
          participantName: this.participants.get(info.participant)?.name ?? null,
          kind: info.kind,
          source: info.source,
          muted: !!info.muted,
          packetsReceived: s?.packetsReceived ?? 0,
          bytesReceived: s?.bytesReceived ?? 0,
          framesDecoded: s?.framesDecoded ?? 0,
          packetsLost: s?.packetsLost ?? 0,
          nackCount: s?.nackCount ?? 0,
          retransmittedPacketsReceived: s?.retransmittedPacketsReceived ?? 0,
        });
      }
    }
    const local = [];
    if (this.pub && !this.closed) {
      const report = await this.pub.getStats();
      for (const p of this.published) {
        let s = null;
        report.forEach((x) => {
          if (x.type === 'outbound-rtp' && x.mid === p.transceiver.mid) s = x;
        });
        local.push({
          mid: p.transceiver.mid,
          kind: p.track.kind,
          source: p.source,
          packetsSent: s?.packetsSent ?? 0,
          bytesSent: s?.bytesSent ?? 0,
          framesEncoded: s?.framesEncoded ?? 0,
        });
      }
    }
    return {
      joined: this.me !== null && !this.closed,
      participant: this.me,
      room: this.room,
      participants: [...this.participants.values()],
      tracks: [...this.tracks.values()],
      remote,
      local,
      trackEvents: this.trackEvents,
      connections: {
        publish: this.pub?.connectionState ?? null,
        subscribe: this.sub?.connectionState ?? null,
      },
      events: this.events,
    };
  }
}

function stopped(transceiver) {
  return transceiver.currentDirection === 'stopped' || transceiver.direction === 'stopped';
}

/** A 640x360 animated canvas as a video stream (a stand-in screen). */
function canvasStream() {
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 360;
  const g = canvas.getContext('2d');
  let n = 0;
  const draw = () => {
    n++;
    g.fillStyle = `hsl(${(n * 3) % 360} 60% 40%)`;
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.fillStyle = '#fff';
    g.font = '48px sans-serif';
    g.fillText(`screen ${n}`, 40, 200);
  };
  draw();
  const timer = setInterval(draw, 66);
  const stream = canvas.captureStream(15);
  stream.getVideoTracks()[0].addEventListener('ended', () => clearInterval(timer));
  // track.stop() does not fire "ended" on the track itself.
  const stop = MediaStreamTrack.prototype.stop;
  stream.getVideoTracks()[0].stop = function () {
    clearInterval(timer);
    stop.call(this);
  };
  return stream;
}

/** The token: ?token= from the URL, else /dev/token (node in --dev mode). */
async function fetchToken(room, name) {
  const fromUrl = new URLSearchParams(location.search).get('token');
  if (fromUrl) return fromUrl;
  const q = new URLSearchParams({ room, name: name || 'guest' });
  let r;
  try {
    r = await fetch(`/dev/token?${q}`);
  } catch {
    throw new CvError('network', 'cannot reach /dev/token');
  }
  if (!r.ok)
    throw new CvError('token_missing', `no ?token= in the URL and /dev/token answered ${r.status}`);
  const body = await r.json();
  if (typeof body.token !== 'string') throw new CvError('token_missing', '/dev/token gave no token');
  return body.token;
}

// --------------------------------------------------------------------- UI

let session = null; // the current (or last) Session

const ui = {
  errors: [], // every error: {code, message, at, fromNode}
  tiles: new Map(), // key -> element, for local and remote tiles

  recordNodeError(msg) {
    this.push({ code: msg.code, message: msg.message ?? '', fromNode: true });
  },

  /** Shows and records e once, however many callers pass it on. */
  error(e) {
    if (e && typeof e === 'object') {
      if (e.shown) return;
      e.shown = true;
    }
    const code = e instanceof CvError ? e.code : e?.name || 'error';
    const message = e instanceof CvError ? e.message : String(e?.message ?? e);
    this.push({ code, message, fromNode: false });
  },

  push(err) {
    this.errors.push({ ...err, at: Date.now() });
    const li = document.createElement('li');
    li.textContent = err.fromNode ? `${err.code}: ${err.message}` : err.message;
    $('errors').append(li);
    while ($('errors').children.length > 5) $('errors').firstChild.remove();
  },

  setStatus(text) {
    $('status').textContent = text;
  },

  /** Reconciles the page with the session state. */
  render() {
    const s = session;
    const live = s && !s.closed;
    $('join-form').hidden = !!(live && s.me);
    $('controls').hidden = !(live && s.me);
    const sharing = live && s.published.some((p) => p.source === 'screen');
    $('screen').textContent = sharing ? 'Stop sharing' : 'Share screen';
    $('screen').disabled = !navigator.mediaDevices?.getDisplayMedia;
    if (!live) this.setStatus(s?.me ? 'left' : 'not connected');
    else if (s.me) this.setStatus(`in room ${s.room} as ${s.name || 'guest'}`);

    const people = $('people');
    people.replaceChildren(...(live ? [...s.participants.values()] : []).map((p) => {
      const li = document.createElement('li');
      li.textContent = p.name || p.id;
      return li;
    }));

    const want = new Map(); // tile key -> {parent, track, label, muted}
    if (live) {
      for (const p of s.published) {
        if (p.track.kind === 'video')
          want.set(`local:${p.track.id}`, { parent: 'local', track: p.track, label: `you (${p.source})` });
      }
      for (const tr of s.sub?.getTransceivers() ?? []) {
        const id = tr.mid && s.subMids.get(tr.mid);
        const info = id && s.tracks.get(id);
        if (!info || stopped(tr)) continue;
        const who = s.participants.get(info.participant)?.name || info.participant;
        want.set(`remote:${id}`, {
          parent: 'remote', track: tr.receiver.track, label: `${who} (${info.source})`, muted: info.muted,
        });
      }
    }
    for (const [key, el] of this.tiles) {
      const w = want.get(key);
      if (!w || el.media.srcObject.getTracks()[0] !== w.track) {
        el.remove();
        this.tiles.delete(key);
      }
    }
    for (const [key, w] of want) {
      let el = this.tiles.get(key);
      if (!el) {
        el = tile(w.track);
        this.tiles.set(key, el);
        $(w.parent).append(el);
      }
      el.querySelector('.label').textContent = w.label;
      el.classList.toggle('muted', !!w.muted);
    }
  },
};

function tile(track) {
  const el = document.createElement('div');
  el.className = `tile ${track.kind}`;
  const media = document.createElement(track.kind === 'video' ? 'video' : 'audio');
  media.autoplay = true;
  media.playsInline = true;
  if (track.kind === 'video') media.muted = true; // audio plays from its own element
  media.srcObject = new MediaStream([track]);
  const label = document.createElement('span');
  label.className = 'label';
  el.append(media, label);
  el.media = media;
  return el;
}

/**
 * Joins a room: token as given, or from the URL / dev endpoint when
 * undefined; null sends no token at all. Publishes camera and microphone
 * unless publish is false, and a screen when screen is set.
 */
async function join({ room, name = '', token, publish = true, screen = false, audio = true, video = true }) {
  if (session && !session.closed) await session.leave();
  const s = new Session(room, name);
  session = s;
  ui.setStatus('joining…');
  try {
    if (token === undefined) token = await fetchToken(room, name);
    await s.join(token);
  } catch (e) {
    ui.setStatus('not connected');
    ui.error(e);
    throw e;
  }
  if (publish) await s.publishMedia({ audio, video });
  if (screen) await s.publishScreen({ fallback: true });
  return s;
}

$('join-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const button = $('join');
  button.disabled = true;
  join({ room: $('room').value.trim(), name: $('name').value.trim() })
    .catch((e) => ui.error(e))
    .finally(() => {
      button.disabled = false;
      ui.render();
    });
});

$('screen').addEventListener('click', () => {
  if (!session || session.closed) return;
  const sharing = session.published.some((p) => p.source === 'screen');
  (sharing ? session.unpublishScreen() : session.publishScreen()).catch((e) => {
    if (e?.name !== 'NotAllowedError') ui.error(e); // the user cancelled the picker
  });
});

$('leave').addEventListener('click', () => session?.leave());
window.addEventListener('pagehide', () => session?.teardown());

{
  const q = new URLSearchParams(location.search);
  if (q.get('room')) $('room').value = q.get('room');
  if (q.get('name')) $('name').value = q.get('name');
}
ui.render();

// ------------------------------------------------------------- test hook

/** Errors come back as {ok: false, code, message} rather than throwing. */
async function outcome(fn) {
  try {
    const value = await fn();
    return { ok: true, ...(value ?? {}) };
  } catch (e) {
    return { ok: false, code: e?.code ?? e?.name ?? 'error', message: String(e?.message ?? e) };
  }
}

window.conclaveTest = {
  /** {room, name, token, screen, publish, audio, video} -> {ok, participant} or {ok:false, code}. */
  join: (opts) => outcome(async () => ({ participant: (await join(opts)).me })),
  /** Publishes a screen track (a canvas when canvas is set or capture fails). */
  publishScreen: (opts = {}) => outcome(() => {
    if (!session) throw new CvError('closed', 'not joined');
    return session.publishScreen({ fallback: true, ...opts });
  }),
  unpublishScreen: () => outcome(() => session?.unpublishScreen()),
  leave: () => outcome(() => session?.leave()),
  /** Sends a raw protocol message; resolves with the reply (errors as {ok:false}). */
  request: (msg) => outcome(async () => {
    if (!session) throw new CvError('closed', 'no session');
    return { reply: await session.request(msg) };
  }),
  /** Per remote track counters, known participants/tracks, errors. */
  stats: async () => {
    const base = session ? await session.stats() : { joined: false, remote: [], local: [], participants: [], tracks: [], trackEvents: 0, events: [] };
    return { ...base, errors: ui.errors };
  },
};
