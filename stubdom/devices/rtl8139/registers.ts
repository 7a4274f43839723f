// RTL8139C register map (C mode; the C+ descriptor mode is not emulated) and bit names, as in
// the Realtek datasheet and Linux's 8139too.c.
export const REG = {
  IDR0: 0x00, // MAC, 6 bytes
  MAR0: 0x08, // multicast hash, 8 bytes
  TSD0: 0x10, // Tx status of descriptor 0..3 (32-bit each)
  TSAD0: 0x20, // Tx start address of descriptor 0..3 (32-bit each)
  RBSTART: 0x30,
  ERBCR: 0x34,
  ERSR: 0x36,
  CR: 0x37,
  CAPR: 0x38,
  CBR: 0x3a,
  IMR: 0x3c,
  ISR: 0x3e,
  TCR: 0x40,
  RCR: 0x44,
  TCTR: 0x48,
  MPC: 0x4c,
  CR9346: 0x50,
  CONFIG0: 0x51,
  CONFIG1: 0x52,
  TIMERINT: 0x54,
  MSR: 0x58,
  CONFIG3: 0x59,
  CONFIG4: 0x5a,
  HLTCLK: 0x5b,
  MULINT: 0x5c,
  RERID: 0x5e,
  TSAD: 0x60,
  BMCR: 0x62,
  BMSR: 0x64,
  ANAR: 0x66,
  ANLPAR: 0x68,
  ANER: 0x6a,
  CSCR: 0x74,
  CONFIG5: 0xd8,
} as const;

// CR
export const CR_RST = 0x10;
export const CR_RE = 0x08;
export const CR_TE = 0x04;
export const CR_BUFE = 0x01;

// ISR / IMR
export const INT_PCIERR = 0x8000; // SERR
export const INT_TIMEOUT = 0x4000;
export const INT_LENCHG = 0x2000;
export const INT_FOVW = 0x40; // Rx FIFO overflow
export const INT_PUN = 0x20; // packet underrun / link change
export const INT_RXOVW = 0x10; // Rx buffer overflow
export const INT_TER = 0x08;
export const INT_TOK = 0x04;
export const INT_RER = 0x02;
export const INT_ROK = 0x01;

// TSD
export const TSD_CRS = 0x8000_0000;
export const TSD_TABT = 0x4000_0000;
export const TSD_OWC = 0x2000_0000;
export const TSD_TOK = 0x8000;
export const TSD_TUN = 0x4000;
export const TSD_OWN = 0x2000;
export const TSD_SIZE_MASK = 0x1fff;
/** Largest frame a Tx descriptor may carry (datasheet: 0700h). */
export const TX_MAX_FRAME = 1792;

// Rx packet header status
export const RXS_MAR = 0x8000;
export const RXS_PAM = 0x4000;
export const RXS_BAR = 0x2000;
export const RXS_ROK = 0x0001;

// RCR
export const RCR_AAP = 0x01;
export const RCR_APM = 0x02;
export const RCR_AM = 0x04;
export const RCR_AB = 0x08;
export const RCR_AR = 0x10;
export const RCR_AER = 0x20;
export const RCR_WRAP = 0x80;

// TCR
export const TCR_LOOPBACK = 0x0006_0000;
/** HW_REVID of an RTL-8139C (bits 30,29,28,26). 8139too matches it; 8139cp wants C+. */
export const TCR_HWREVID_8139C = 0x7400_0000;

/** PCI revision of the 8139C; >= 0x20 would make 8139too hand the chip to 8139cp. */
export const RTL8139C_PCI_REVISION = 0x10;
