import type { Deployment, ModelRoute } from "./model-catalog.js";

/** One deployment to try for a call, in plan order (the call planner builds the list, the call runner walks it). */
export interface Candidate {
  readonly deployment: Deployment;
  /** The alias the deployment belongs to (another one than requested for a model fallback). */
  readonly route: ModelRoute;
  readonly fallback: boolean;
}
