import type { ConnectError } from "@connectrpc/connect";
import { errorLimits } from "../errors/bounded-error.js";
import { invalidArgument, type FieldViolation } from "../errors/gateway-error.js";
import { reasons, type Reason } from "../errors/reasons.js";

/**
 * The bad fields of one request: the first `errorLimits.maxViolations` recorded, the rest
 * only counted, so a request with a million bad elements costs a counter, not a million
 * errors. Field paths (`messages[3].content[1].image`) are built only for recorded
 * violations; a caller building a description from input checks `recording` first.
 */
export class ViolationList {
  private recorded: FieldViolation[] | undefined;
  private total = 0;

  /** Whether the next violation is recorded (else it is only counted). */
  get recording(): boolean {
    return this.total < errorLimits.maxViolations;
  }

  add(field: string, description: string, reason: Reason = reasons.invalidField): void {
    if (this.total++ < errorLimits.maxViolations) (this.recorded ??= []).push({ field, description, reason });
  }

  /** A violation at `list[i]` + `rest` (`rest` is ".name", or "" for the element itself). */
  item(list: string, i: number, rest: string, description: string, reason?: Reason): void {
    if (this.recording) this.add(`${list}[${i}]${rest}`, description, reason);
    else this.total++;
  }

  /** A violation at `list[i].inner[j]` + `rest`. */
  nested(list: string, i: number, inner: string, j: number, rest: string, description: string, reason?: Reason): void {
    if (this.recording) this.add(`${list}[${i}].${inner}[${j}]${rest}`, description, reason);
    else this.total++;
  }

  /** INVALID_ARGUMENT naming the recorded violations and counting the rest, or undefined when there are none. */
  toError(): ConnectError | undefined {
    return this.total === 0 ? undefined : invalidArgument(this.recorded ?? [], this.total);
  }
}
