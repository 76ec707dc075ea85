// A UDP relay between browsers and the node that loses packets on purpose
// (tc netem does not exist on these kernels).

import dgram from 'node:dgram';

const isRtp = (d) => d.length > 1 && d[0] >= 128 && d[0] <= 191 && !(d[1] >= 192 && d[1] <= 223);

/*
 * Listens on relayIp:port and forwards to 127.0.0.1:port; replies come back
 * through the same client mapping. Every toClient-th RTP datagram towards
 * the clients, and every toNode-th one towards the node (0: none), is
 * dropped, as a lossy link would. RTP: first byte 128..191 and a second
 * byte that is not an RTCP type.
 */
export async function lossyRelay(relayIp, port, { toClient = 0, toNode = 0 } = {}) {
  const front = dgram.createSocket('udp4');
  const backs = new Map();
  const stats = { dropped: 0, forwarded: 0, droppedToNode: 0 };
  let n = 0;
  let m = 0;
  front.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let back = backs.get(key);
    if (!back) {
      back = dgram.createSocket('udp4');
      back.on('message', (reply) => {
        const rtp = isRtp(reply);
        if (rtp && toClient && ++n % toClient === 0) {
          stats.dropped++;
          return;
        }
        stats.forwarded++;
        front.send(reply, rinfo.port, rinfo.address);
      });
      back.bind(0, '127.0.0.1');
      backs.set(key, back);
    }
    if (isRtp(msg) && toNode && ++m % toNode === 0) {
      stats.droppedToNode++;
      return;
    }
    back.send(msg, port, '127.0.0.1');
  });
  await new Promise((r) => front.bind(port, relayIp, r));
  return { stats, close: () => { front.close(); for (const b of backs.values()) b.close(); } };
}

