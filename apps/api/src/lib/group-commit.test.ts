import { writeEachAlone } from "./group-commit";

describe("writeEachAlone (a failed batch retried item by item)", () => {
  it("runs at most `concurrency` writes at once, answers each item by its own outcome as soon as it is written, and turns a failure into that item's Error", async () => {
    let running = 0;
    let mostAtOnce = 0;
    const finishers = new Map<number, () => void>();
    const answers = writeEachAlone([1, 2, 3, 4, 5, 6], 2, async (item) => {
      running++;
      mostAtOnce = Math.max(mostAtOnce, running);
      await new Promise<void>((resolve) => finishers.set(item, resolve));
      running--;
      if (item === 4) throw new Error("refused: 4");
      if (item === 5) throw "not an Error";
      return item * 10;
    });
    const settled: number[] = [];
    answers.forEach((answer, index) => void answer.then(() => settled.push(index + 1)));
    const tick = () => new Promise((resolve) => setImmediate(resolve));

    await tick();
    expect([...finishers.keys()]).toEqual([1, 2]);
    finishers.get(2)!();
    await tick();
    // The second answered on its own, before the first; the third took its place.
    expect(settled).toEqual([2]);
    expect([...finishers.keys()]).toEqual([1, 2, 3]);
    for (const item of [1, 3, 4, 5, 6]) {
      await tick();
      finishers.get(item)!();
    }
    const outcomes = await Promise.all(answers);
    expect(outcomes.slice(0, 3)).toEqual([10, 20, 30]);
    expect(outcomes[3]).toEqual(new Error("refused: 4"));
    expect(outcomes[4]).toEqual(new Error("not an Error"));
    expect(outcomes[5]).toBe(60);
    expect(mostAtOnce).toBe(2);
  });
});
