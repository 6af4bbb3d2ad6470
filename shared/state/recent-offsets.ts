/**
 * The last `capacity` offsets added, as a value that successive states share: adding to the newest costs O(1)
 * amortised (one array grows in place and is cut back to its window now and then, into a new array), while an
 * older state keeps seeing its own window. Copying the window on every add made rebuilding a long stream's state
 * cost 256 copies per event.
 */
export class RecentOffsets {
  private constructor(
    private readonly backing: number[],
    private readonly end: number,
    private readonly capacity: number,
  ) {}

  static empty(capacity: number): RecentOffsets {
    return new RecentOffsets([], 0, capacity);
  }

  add(offset: number): RecentOffsets {
    // Only the newest value may grow the shared array; an older one copies its window first.
    let backing = this.backing.length === this.end ? this.backing : this.window();
    if (backing.length >= this.capacity * 2) backing = backing.slice(-this.capacity);
    backing.push(offset);
    return new RecentOffsets(backing, backing.length, this.capacity);
  }

  includes(offset: number): boolean {
    for (let i = Math.max(0, this.end - this.capacity); i < this.end; i++) if (this.backing[i] === offset) return true;
    return false;
  }

  /** The offsets in the window, oldest first, as a new array. */
  window(): number[] {
    return this.backing.slice(Math.max(0, this.end - this.capacity), this.end);
  }
}
