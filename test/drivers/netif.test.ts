import { describe, expect, it } from 'vitest';
import {
  NET_RX_RING_SIZE,
  NET_TX_RING_SIZE,
  NETIF_RSP_DROPPED,
  NETIF_RSP_ERROR,
  NETIF_RSP_NULL,
  NETIF_RSP_OKAY,
  netifExtraInfo,
  netifRxRequest,
  netifRxResponse,
  netifTxRequest,
  netifTxResponse,
  NETRXF_csum_blank,
  NETRXF_data_validated,
  NETRXF_extra_info,
  NETRXF_gso_prefix,
  NETRXF_more_data,
  NETTXF_csum_blank,
  NETTXF_data_validated,
  NETTXF_extra_info,
  NETTXF_more_data,
  XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ,
  XEN_NETIF_EXTRA_FLAG_MORE,
  XEN_NETIF_EXTRA_TYPE_GSO,
  XEN_NETIF_EXTRA_TYPE_HASH,
  XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
  XEN_NETIF_EXTRA_TYPE_MCAST_DEL,
  XEN_NETIF_EXTRA_TYPE_NONE,
  XEN_NETIF_GSO_TYPE_NONE,
  XEN_NETIF_GSO_TYPE_TCPV4,
  XEN_NETIF_GSO_TYPE_TCPV6,
  XEN_NETIF_MAX_TX_SIZE,
  XEN_NETIF_NR_SLOTS_MIN,
  netifQueueKey,
  NETIF_FRONTEND_KEYS,
} from '../../drivers/wire/netif.js';
import { hex, scratch } from './helpers.js';

describe('netif.h constants', () => {
  it('has the header numbers', () => {
    expect([NETTXF_csum_blank, NETTXF_data_validated, NETTXF_more_data, NETTXF_extra_info]).toEqual([1, 2, 4, 8]);
    // RX swaps bits 0 and 1
    expect([NETRXF_data_validated, NETRXF_csum_blank, NETRXF_more_data, NETRXF_extra_info, NETRXF_gso_prefix]).toEqual([
      1, 2, 4, 8, 16,
    ]);
    expect([NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_OKAY, NETIF_RSP_NULL]).toEqual([-2, -1, 0, 1]);
    expect([
      XEN_NETIF_EXTRA_TYPE_NONE,
      XEN_NETIF_EXTRA_TYPE_GSO,
      XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
      XEN_NETIF_EXTRA_TYPE_MCAST_DEL,
      XEN_NETIF_EXTRA_TYPE_HASH,
    ]).toEqual([0, 1, 2, 3, 4]);
    expect(XEN_NETIF_EXTRA_FLAG_MORE).toBe(1);
    expect([XEN_NETIF_GSO_TYPE_NONE, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6]).toEqual([0, 1, 2]);
    expect(XEN_NETIF_NR_SLOTS_MIN).toBe(18);
    expect(XEN_NETIF_MAX_TX_SIZE).toBe(0xffff);
    expect(NET_TX_RING_SIZE).toBe(256);
    expect(NET_RX_RING_SIZE).toBe(256);
    expect(NETIF_FRONTEND_KEYS.requestRxCopy).toBe('request-rx-copy');
    expect(netifQueueKey(1, NETIF_FRONTEND_KEYS.txRingRef)).toBe('queue-1/tx-ring-ref');
  });
});

describe('netif.h layouts (little-endian, exact bytes)', () => {
  it('netif_tx_request: gref@0 offset@4 flags@6 id@8 size@10, 12 bytes', () => {
    const { u8, view } = scratch(16);
    netifTxRequest.encode(view, 0, { gref: 0x11223344, offset: 0x5566, flags: 0x0009, id: 0xaabb, size: 0xccdd });
    expect(hex(u8, 0, 16)).toBe('44332211' + '6655' + '0900' + 'bbaa' + 'ddcc' + '00000000');
    for (const [field, at] of [['gref', 0], ['offset', 4], ['flags', 6], ['id', 8], ['size', 10]] as const) {
      const s = scratch(12);
      netifTxRequest.encode(s.view, 0, { gref: 0, offset: 0, flags: 0, id: 0, size: 0, [field]: 1 });
      expect(s.u8.indexOf(1), field).toBe(at);
    }
    expect(netifTxRequest.decode(view, 0)).toEqual({ gref: 0x11223344, offset: 0x5566, flags: 9, id: 0xaabb, size: 0xccdd });
    expect(netifTxRequest.size).toBe(12);
  });

  it('netif_tx_response: id@0 status(s16)@2', () => {
    const { u8, view } = scratch(4);
    netifTxResponse.encode(view, 0, { id: 0x0102, status: NETIF_RSP_DROPPED });
    expect(hex(u8)).toBe('0201' + 'feff');
    expect(netifTxResponse.decode(view, 0)).toEqual({ id: 0x102, status: -2 });
  });

  it('netif_rx_request: id@0 pad@2 gref@4, 8 bytes', () => {
    const { u8, view } = scratch(8);
    u8.fill(0xff);
    netifRxRequest.encode(view, 0, { id: 0x1234, gref: 0xdeadbeef });
    expect(hex(u8)).toBe('3412' + '0000' + 'efbeadde');
    expect(netifRxRequest.decode(view, 0)).toEqual({ id: 0x1234, gref: 0xdeadbeef });
  });

  it('netif_rx_response: id@0 offset@2 flags@4 status(s16)@6', () => {
    const { u8, view } = scratch(8);
    netifRxResponse.encode(view, 0, { id: 1, offset: 0x0203, flags: NETRXF_more_data | NETRXF_csum_blank, status: 1514 });
    expect(hex(u8)).toBe('0100' + '0302' + '0600' + 'ea05');
    netifRxResponse.encode(view, 0, { id: 1, offset: 0, flags: 0, status: NETIF_RSP_ERROR });
    expect(hex(u8, 6, 2)).toBe('ffff');
    expect(netifRxResponse.decode(view, 0).status).toBe(-1);
  });

  it('netif_extra_info GSO: type@0 flags@1 size@2 gso.type@4 pad@5 features@6', () => {
    const { u8, view } = scratch(8);
    u8.fill(0xff);
    netifExtraInfo.encode(view, 0, {
      type: XEN_NETIF_EXTRA_TYPE_GSO,
      flags: XEN_NETIF_EXTRA_FLAG_MORE,
      gso: { size: 1448, type: XEN_NETIF_GSO_TYPE_TCPV6, features: 0x0102 },
    });
    expect(hex(u8)).toBe('01' + '01' + 'a805' + '02' + '00' + '0201');
    expect(netifExtraInfo.decode(view, 0)).toEqual({ type: 1, flags: 1, gso: { size: 1448, type: 2, features: 0x102 } });
  });

  it('netif_extra_info MCAST: addr[6]@2', () => {
    const { u8, view } = scratch(8);
    const addr = Uint8Array.of(0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb);
    netifExtraInfo.encode(view, 0, { type: XEN_NETIF_EXTRA_TYPE_MCAST_DEL, flags: 0, addr });
    expect(hex(u8)).toBe('0300' + '01005e0000fb');
    const d = netifExtraInfo.decode(view, 0);
    expect(d.type).toBe(XEN_NETIF_EXTRA_TYPE_MCAST_DEL);
    expect('addr' in d && [...d.addr]).toEqual([...addr]);
    netifExtraInfo.encode(view, 0, { type: XEN_NETIF_EXTRA_TYPE_MCAST_ADD, flags: 0, addr });
    expect(u8[0]).toBe(2);
  });

  it('netif_extra_info HASH: hash.type@2 algorithm@3 value[4]@4', () => {
    const { u8, view } = scratch(8);
    netifExtraInfo.encode(view, 0, {
      type: XEN_NETIF_EXTRA_TYPE_HASH,
      flags: 0,
      hash: { type: 1, algorithm: XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, value: 0xa1b2c3d4 },
    });
    expect(hex(u8)).toBe('0400' + '01' + '01' + 'd4c3b2a1');
    expect(netifExtraInfo.decode(view, 0)).toEqual({ type: 4, flags: 0, hash: { type: 1, algorithm: 1, value: 0xa1b2c3d4 } });
  });

  it('netif_extra_info of an unknown type keeps the raw payload for the caller to reject', () => {
    const { u8, view } = scratch(8);
    u8.set([9, 0, 1, 2, 3, 4, 5, 6]);
    const d = netifExtraInfo.decode(view, 0);
    expect(d.type).toBe(9);
    expect('raw' in d && [...d.raw]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('decodes into a reused object', () => {
    const { view } = scratch(12);
    const into = { gref: 0, offset: 0, flags: 0, id: 0, size: 0 };
    netifTxRequest.encode(view, 0, { gref: 5, offset: 6, flags: 7, id: 8, size: 9 });
    expect(netifTxRequest.decode(view, 0, into)).toBe(into);
    expect(into.size).toBe(9);
  });
});
