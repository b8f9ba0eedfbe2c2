import { createMemoryState } from "./memory-state.js";
import { describeStateStore } from "../../test/helpers/state-store-contract.js";

describeStateStore("memory", async () => createMemoryState());
