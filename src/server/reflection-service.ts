import { create, type DescService } from "@bufbuild/protobuf";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createDescriptorIndex, type DescriptorIndex } from "../wire/descriptor-index.js";

/** The reflection services themselves, to list them among the served services. */
export const reflectionServices: readonly DescService[] = [v1.ServerReflection, v1alpha.ServerReflection];

/** One reflection request, whichever version asked (v1 and v1alpha messages have the same shape). */
type Query =
  | { case: "fileByFilename"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: "listServices"; value: string }
  | { case: undefined; value?: undefined };

/** The answer, as a message-init shape both versions' `create` accept. */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: Array<{ name: string }> } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

export interface ReflectionServiceOptions {
  /** Every service the server serves (list_services answers these; their files are described). */
  readonly services: readonly DescService[];
}

export interface ReflectionService {
  register(router: ConnectRouter): void;
}

/**
 * gRPC server reflection, v1 and v1alpha (grpcurl and most tools still ask v1alpha
 * first), so `grpcurl list` / `describe` work against Sluice without proto files.
 */
export function createReflectionService(options: ReflectionServiceOptions): ReflectionService {
  const index = createDescriptorIndex(options.services);

  return {
    register(router) {
      router.service(v1.ServerReflection, {
        async *serverReflectionInfo(requests) {
          const sent = new Set<string>();
          for await (const request of requests) {
            yield create(v1.ServerReflectionResponseSchema, {
              validHost: request.host,
              originalRequest: request,
              messageResponse: answer(index, request.messageRequest, sent),
            });
          }
        },
      });
      router.service(v1alpha.ServerReflection, {
        async *serverReflectionInfo(requests) {
          const sent = new Set<string>();
          for await (const request of requests) {
            yield create(v1alpha.ServerReflectionResponseSchema, {
              validHost: request.host,
              originalRequest: request,
              messageResponse: answer(index, request.messageRequest, sent),
            });
          }
        },
      });
    },
  };
}

function notFound(message: string): Answer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: message } };
}

/** Answers one request; `sent` holds the files already sent on this stream. */
function answer(index: DescriptorIndex, query: Query, sent: Set<string>): Answer {
  switch (query.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: index.serviceNames.map((name) => ({ name })) } };
    case "fileByFilename": {
      const file = index.fileByName(query.value);
      if (file === undefined) return notFound(`file "${query.value}" not found`);
      return { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.withDependencies(file, sent) } };
    }
    case "fileContainingSymbol": {
      const file = index.fileBySymbol(query.value);
      if (file === undefined) return notFound(`symbol "${query.value}" not found`);
      return { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.withDependencies(file, sent) } };
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = query.value;
      const file = index.fileByExtension(containingType, extensionNumber);
      if (file === undefined) return notFound(`extension ${extensionNumber} of "${containingType}" not found`);
      return { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.withDependencies(file, sent) } };
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbers(query.value);
      if (numbers === undefined) return notFound(`type "${query.value}" not found`);
      return { case: "allExtensionNumbersResponse", value: { baseTypeName: query.value, extensionNumber: numbers } };
    }
    default:
      return {
        case: "errorResponse",
        value: { errorCode: Code.InvalidArgument, errorMessage: "empty or unknown reflection request" },
      };
  }
}
