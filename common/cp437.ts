// Code page 437, the character set of a PC's VGA text mode, as Unicode: the font on the host is
// indexed by Unicode, the guest's text memory by CP437 byte.
const GRAPHIC_LOW = ' ☺☻♥♦♣♠•◘○◙♂♀♪♫☼►◄↕‼¶§▬↨↑↓→←∟↔▲▼';
const HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';

/** CP437 byte -> Unicode code point. */
export const CP437_TO_UNICODE: readonly number[] = (() => {
  const out: number[] = [];
  for (const ch of GRAPHIC_LOW) out.push(ch.codePointAt(0)!);
  for (let c = 0x20; c < 0x7f; c++) out.push(c);
  out.push(0x2302); // ⌂
  for (const ch of HIGH) out.push(ch.codePointAt(0)!);
  if (out.length !== 256) throw new Error(`CP437 table has ${out.length} entries`);
  return out;
})();
