// The 93C46 serial EEPROM behind the RTL8139's 9346CR register (64 x 16-bit words), bit-banged
// by the driver through EECS/EESK/EEDI with EEDO read back. Protocol (Microwire): raise CS,
// clock in a start bit (1), a 2-bit opcode and a 6-bit address, MSB first, on rising SK edges;
// for READ (10) the chip then shifts the addressed word out MSB first, one bit per rising edge.
// Leading zeros before the start bit are ignored, which is how 8139too tells a 93C46 (6-bit
// addresses) from a 93C56 (8-bit): its 8-bit probe of word 0 comes back shifted and does not
// read 0x8129. Writes are accepted (EWEN/WRITE/WRAL/EWDS) but only change this copy.
import { readRegisters, writeRegisters, type FieldReader, type FieldWriter } from '../../device-model/device-state.js';

export const EEPROM_WORDS = 64;

const enum Mode {
  Idle,
  WaitStart,
  Command,
  ReadData,
  WriteData,
  WriteAll,
}

const EEPROM_REGISTERS = ['mode', 'tick', 'input', 'output', 'address', 'writeEnabled', 'cs', 'sk', 'dout'] as const;

export class Eeprom93c46 {
  readonly contents = new Uint16Array(EEPROM_WORDS);
  private mode = Mode.Idle;
  private tick = 0;
  private input = 0;
  private output = 0;
  private address = 0;
  private writeEnabled = false;
  private cs = false;
  private sk = false;
  private dout = false;

  saveState(f: FieldWriter): void {
    f.bytes('eeprom', new Uint8Array(this.contents.buffer.slice(0)));
    writeRegisters(f, this, EEPROM_REGISTERS);
  }

  /** Reads and checks the EEPROM's fields; returns what applies them. */
  readState(r: FieldReader): () => void {
    const contents = r.bytes('eeprom', EEPROM_WORDS * 2);
    const regs = readRegisters(r, this, EEPROM_REGISTERS, { mode: Mode.WriteAll, address: EEPROM_WORDS - 1, tick: 64 });
    return () => {
      new Uint8Array(this.contents.buffer).set(contents);
      Object.assign(this, regs);
    };
  }

  /** Standard RTL8139 contents: signature 0x8129, PCI IDs, MAC in words 7..9. */
  static forRtl8139(mac: Uint8Array): Eeprom93c46 {
    const e = new Eeprom93c46();
    e.contents[0] = 0x8129;
    e.contents[1] = 0x10ec;
    e.contents[2] = 0x8139;
    for (let i = 0; i < 3; i++) e.contents[7 + i] = mac[2 * i]! | (mac[2 * i + 1]! << 8);
    return e;
  }

  /** EEDO as the chip drives it (0 while not selected). */
  get dataOut(): boolean {
    return this.cs && this.dout;
  }

  setWires(cs: boolean, sk: boolean, di: boolean): void {
    const risingCs = cs && !this.cs;
    const risingSk = sk && !this.sk;
    this.cs = cs;
    this.sk = sk;
    if (risingCs) {
      this.mode = Mode.WaitStart;
      this.tick = 0;
      this.input = 0;
      this.output = 0;
      this.dout = false;
    }
    if (!cs) return;
    if (risingSk) this.clock(di);
  }

  private clock(di: boolean): void {
    const bit = di ? 1 : 0;
    this.tick++;
    switch (this.mode) {
      case Mode.WaitStart:
        if (bit) {
          this.mode = Mode.Command;
          this.tick = 0;
          this.input = 0;
        }
        break;
      case Mode.Command:
        this.input = ((this.input << 1) | bit) & 0xff;
        if (this.tick === 8) this.decode(this.input);
        break;
      case Mode.ReadData:
        this.dout = (this.output & 0x8000) !== 0;
        this.output = (this.output << 1) & 0xffff;
        if (this.tick === 16) {
          // Like QEMU: wait for a new command without needing a CS cycle (FreeBSD's rl needs it).
          this.mode = Mode.WaitStart;
          this.tick = 0;
          this.input = 0;
        }
        break;
      case Mode.WriteData:
      case Mode.WriteAll:
        this.input = ((this.input << 1) | bit) & 0xffff;
        if (this.tick === 16) {
          if (this.writeEnabled) {
            if (this.mode === Mode.WriteData) this.contents[this.address] = this.input;
            else this.contents.fill(this.input);
          }
          this.mode = Mode.Idle;
        }
        break;
      case Mode.Idle:
        break;
    }
  }

  private decode(cmd: number): void {
    const op = cmd & 0xc0;
    this.tick = 0;
    if (op === 0x80) {
      this.address = cmd & 0x3f;
      this.output = this.contents[this.address]!;
      this.dout = false; // the dummy 0 bit
      this.mode = Mode.ReadData;
    } else if (op === 0x40) {
      this.address = cmd & 0x3f;
      this.input = 0;
      this.mode = Mode.WriteData;
    } else if (op === 0x00) {
      const ext = cmd & 0x30;
      if (ext === 0x30) this.writeEnabled = true;
      else if (ext === 0x00) this.writeEnabled = false;
      this.input = 0;
      this.mode = ext === 0x10 ? Mode.WriteAll : Mode.Idle;
    } else {
      this.mode = Mode.Idle; // ERASE (11): not supported, ignored
    }
  }
}
